package tasks

import "strings"

// checkOSPython fails when the script's interpreter is missing, not
// executable, or not Python 2 (every script version is Python-2-only).
func checkOSPython(e *nodeEnv) (Status, string) {
	f := e.Facts
	py := e.Node.Python
	if py == "" {
		py = e.Arch.Python
	}
	switch {
	case !f.PythonExists:
		return Fail, py + " is missing, expected a Python 2 interpreter"
	case !f.PythonExecutable:
		return Fail, py + " is not an executable file"
	case f.PythonMajor != 2:
		out := strings.TrimSpace(f.PythonOutput)
		if out == "" {
			out = "nothing"
		}
		return Fail, py + " reports major version " + truncate(out, 80) + ", expected 2"
	}
	return Pass, py + " is Python 2"
}
