# Shared by the sweep scripts (scripts/sweep-*.sh), which source it after defining their
# candidates ("NAME|BASE|OVERRIDES" strings): --list prints them; a temporary directory
# ($tmp, removed on exit); the confide binary ($bin: CONFIDE_BIN, else built into $tmp);
# the candidates named on the command line, or all of them ($selected).

if [[ ${1:-} == --list ]]; then
	printf '%s\n' "${candidates[@]}"
	exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
bin=${CONFIDE_BIN:-}
if [[ -z $bin ]]; then
	nice -n 19 go build -o "$tmp/confide" ./cmd/confide
	bin=$tmp/confide
fi

selected=()
if (($# > 0)); then
	for want in "$@"; do
		found=
		for c in "${candidates[@]}"; do
			[[ ${c%%|*} == "$want" ]] && selected+=("$c") && found=1
		done
		[[ -n $found ]] || { echo "unknown candidate $want (see --list)" >&2; exit 2; }
	done
else
	selected=("${candidates[@]}")
fi
