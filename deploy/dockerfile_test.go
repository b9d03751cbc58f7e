package deploy

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// dockerfileStage is one FROM … of a Dockerfile with its instructions (continuation lines
// joined).
type dockerfileStage struct {
	from, name   string
	instructions []string
}

func parseDockerfile(t *testing.T, path string) []dockerfileStage {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var stages []dockerfileStage
	var line string
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "#") || (l == "" && line == "") {
			continue
		}
		if cont, ok := strings.CutSuffix(l, "\\"); ok {
			line += cont + " "
			continue
		}
		line += l
		fields := strings.Fields(line)
		line = ""
		if len(fields) == 0 {
			continue
		}
		if strings.EqualFold(fields[0], "FROM") {
			s := dockerfileStage{from: fields[1]}
			if len(fields) == 4 && strings.EqualFold(fields[2], "AS") {
				s.name = fields[3]
			}
			stages = append(stages, s)
			continue
		}
		if len(stages) > 0 {
			stages[len(stages)-1].instructions = append(stages[len(stages)-1].instructions, strings.Join(fields, " "))
		}
	}
	return stages
}

// TestDockerfileBuildsAStaticNonRootImage: the image is built in a Go stage with
// CGO_ENABLED=0 and runs on a static base (distroless static or scratch) holding only what
// it copies from the build stage, as a numeric non-root user, with the binary as entry
// point; and the build that stage runs gives a static executable (no interpreter, no shared
// libraries) that runs.
func TestDockerfileBuildsAStaticNonRootImage(t *testing.T) {
	stages := parseDockerfile(t, filepath.Join("..", "Dockerfile"))
	if len(stages) < 2 {
		t.Fatalf("%d stages, want a build stage and the image", len(stages))
	}
	build, final := stages[0], stages[len(stages)-1]
	built := ""
	for _, in := range build.instructions {
		if strings.HasPrefix(in, "RUN ") && strings.Contains(in, "go build") {
			if !strings.Contains(in, "CGO_ENABLED=0") || !strings.Contains(in, "./cmd/confide") {
				t.Errorf("build %q: want CGO_ENABLED=0 go build … ./cmd/confide", in)
			}
			if _, after, ok := strings.Cut(in, " -o "); ok {
				built = strings.Fields(after)[0]
			}
		}
	}
	if built == "" {
		t.Fatal("the build stage runs no go build -o")
	}
	if !strings.HasPrefix(final.from, "gcr.io/distroless/static") && final.from != "scratch" {
		t.Errorf("the image is FROM %s, want distroless static or scratch", final.from)
	}
	var user, entry string
	for _, in := range final.instructions {
		op, arg, _ := strings.Cut(in, " ")
		switch strings.ToUpper(op) {
		case "COPY":
			if !strings.HasPrefix(arg, "--from="+build.name+" ") || !strings.Contains(arg, built) {
				t.Errorf("the image copies %q: want only the built binary %s from stage %s", arg, built, build.name)
			}
			entry = strings.Fields(arg)[len(strings.Fields(arg))-1]
		case "USER":
			user = arg
		case "RUN", "ADD":
			t.Errorf("the image stage runs %q: it has no shell, and should hold only the binary", in)
		case "ENTRYPOINT":
			if arg != `["`+entry+`"]` {
				t.Errorf("ENTRYPOINT %s, want [%q] (the copied binary)", arg, entry)
			}
		}
	}
	uid, _, _ := strings.Cut(user, ":")
	if uid == "" || strings.Trim(uid, "0123456789") != "" || strings.Trim(uid, "0") == "" {
		t.Errorf("USER %q: want a numeric non-root uid (Kubernetes' runAsNonRoot can only check a number)", user)
	}

	bin := confide(t)
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("the binary asks for a dynamic loader: it would not run on a static base")
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("the binary links shared libraries %v", libs)
	}
	if out, err := exec.Command(bin, "version").CombinedOutput(); err != nil || !strings.HasPrefix(string(out), "confide ") {
		t.Errorf("confide version: %v %s", err, out)
	}
}
