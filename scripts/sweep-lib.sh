# Shared by the sweep scripts (scripts/sweep-*.sh), which source it after defining their
# candidates ("NAME|BASE|OVERRIDES" strings): --list prints them; a temporary directory
# ($tmp, removed on exit); the confide binary ($bin: CONFIDE_BIN, else built into $tmp);
# the candidates named on the command line, or all of them ($selected); heading, the opening
# lines of an invocation's table; run_sim, one sim run of a candidate.

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

# heading [TITLE [DETAIL]]: the lines that open an invocation's table in $out — the heading
# (TITLE, the date, the commit, DETAIL such as the rounds override, the sim's threads and
# the machine's cores) and NOTE under it.
heading() {
	echo
	echo "## ${1:+$1, }$(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)${2:+, $2}, GOMAXPROCS=$threads on $(nproc) cores"
	echo
	if [[ -n ${NOTE:-} ]]; then
		echo "$NOTE"
		echo
	fi
}

# run_sim DIR LABEL OVERRIDES: one run of "$bin ${args[@]}" (the caller's args array) into DIR, with the
# caller's vars array in its environment, GOMAXPROCS=$threads and nice 19: the run's results
# in DIR/out, its stdout in DIR/summary.json, stderr in DIR/stderr and "wall user sys"
# seconds in DIR/time. It logs NAME (RUN) and OVERRIDES to stderr first; its status is the
# sim's.
run_sim() {
	local res=$1 label=$2 overrides=$3
	mkdir -p "$res"
	echo "$(date -u +%H:%M:%S) $label: $overrides" >&2
	env "${vars[@]}" GOMAXPROCS="$threads" /usr/bin/time -f '%e %U %S' -o "$res/time" \
		nice -n 19 "$bin" "${args[@]}" --results-dir "$res/out" >"$res/summary.json" 2>"$res/stderr"
}
