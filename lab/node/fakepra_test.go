package node_test

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // the expected menu dates are computed for Europe/Paris
)

// fast makes every step one spinner frame long.
var fast = map[string]string{"STEP_SECONDS": "0", "IPS": "10.9.9.9," + coreIP}

func knobs(extra ...string) map[string]string {
	m := map[string]string{}
	for k, v := range fast {
		m[k] = v
	}
	for i := 0; i+1 < len(extra); i += 2 {
		m[extra[i]] = extra[i+1]
	}
	return m
}

func TestMenu_ExactBytesPerFamily(t *testing.T) {
	store := tree{gens: standardGens()}.write(t)
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	g := standardGens()
	for _, fam := range families {
		t.Run(fam, func(t *testing.T) {
			t.Parallel()
			res := run{variant: fam, store: store, knobs: knobs(), stdin: "2\n", tz: "Europe/Paris"}.exec(t)
			want := menuBytes(fam, paris, g[1], g[0])
			if !strings.HasPrefix(res.stdout, want) {
				t.Fatalf("menu bytes:\n got %q\nwant %q", res.stdout[:min(len(res.stdout), len(want)+40)], want)
			}
			if strings.Count(res.stdout, "Choose backup generation") != 1 {
				t.Errorf("valid answer must not redisplay the menu:\n%q", res.stdout)
			}
			if res.rc != 0 || !strings.HasSuffix(res.stdout, "\rStarting BlueMind services OK\n") {
				t.Errorf("rc %d, stdout %q, stderr %q", res.rc, res.stdout, res.stderr)
			}
		})
	}
}

func TestMenu_InvalidAnswersRedisplayMenuAndPrompt(t *testing.T) {
	store := tree{gens: standardGens()}.write(t)
	for _, fam := range []string{"legacy", "bm4es"} {
		t.Run(fam, func(t *testing.T) {
			t.Parallel()
			// int() semantics: "abc", "", "0", "3", "1.0", "-1" are refused, " 2 \r" is 2.
			res := run{variant: fam, store: store, knobs: knobs(), tz: "UTC",
				stdin: "abc\n\n0\n3\n1.0\n-1\n 2 \r\n"}.exec(t)
			want := strings.Repeat(menuBytes(fam, time.UTC, standardGens()[1], standardGens()[0]), 7)
			if !strings.HasPrefix(res.stdout, want) || strings.Count(res.stdout, "Choose backup") != 7 {
				t.Fatalf("want 7 identical menus then the restore, got:\n%q", res.stdout)
			}
			if res.rc != 0 {
				t.Errorf("rc %d", res.rc)
			}
		})
	}
}

func TestMenu_EOFRedisplaysForeverUntilKilled(t *testing.T) {
	store := tree{gens: standardGens()}.write(t)
	for _, fam := range families {
		t.Run(fam, func(t *testing.T) {
			t.Parallel()
			out := run{variant: fam, store: store, knobs: knobs(), tz: "UTC"}.stream(t)
			menu := menuBytes(fam, time.UTC, standardGens()[1], standardGens()[0])
			buf := make([]byte, len(menu))
			// Far more menus than any input could answer: the script loops by itself.
			for i := 0; i < 2000; i++ {
				if _, err := readFull(out, buf); err != nil {
					t.Fatalf("menu %d: %v", i, err)
				}
				if string(buf) != menu {
					t.Fatalf("menu %d: got %q want %q", i, buf, menu)
				}
			}
		})
	}
}

func TestMenu_MaxMenusStopsTheEOFLoopWith99(t *testing.T) {
	store := tree{gens: standardGens()}.write(t)
	res := run{variant: "bm4es", store: store, knobs: knobs("MAX_MENUS", "25")}.exec(t)
	if res.rc != 99 || strings.Count(res.stdout, "Choose backup generation to restore (1-2): \n") != 25 {
		t.Fatalf("rc %d, %d prompts", res.rc, strings.Count(res.stdout, "Choose backup"))
	}
}

func TestMenu_KnobsFileIsReadAndEnvOverridesIt(t *testing.T) {
	store := tree{gens: standardGens()}.write(t)
	res := run{variant: "bm4", store: store, conf: "# knobs\nMAX_MENUS=3\nSTEP_SECONDS=0\nIPS=" + coreIP + "\n",
		knobs: map[string]string{"MAX_MENUS": "4"}}.exec(t)
	if res.rc != 99 || strings.Count(res.stdout, "Choose backup") != 4 {
		t.Fatalf("rc %d, %d prompts (want 99, 4)", res.rc, strings.Count(res.stdout, "Choose backup"))
	}
	res = run{variant: "bm4", store: store, conf: "MAX_MENUS=3\nIPS=" + coreIP + "\n"}.exec(t)
	if res.rc != 99 || strings.Count(res.stdout, "Choose backup") != 3 {
		t.Fatalf("rc %d, %d prompts (want 99, 3)", res.rc, strings.Count(res.stdout, "Choose backup"))
	}
}

func TestFalseSuccess_NoGenerationFiles(t *testing.T) {
	store := tree{gens: standardGens()}.write(t)
	for _, g := range []string{"generation-312.json", "generation-310.json"} {
		removeFile(t, store, g)
	}
	for _, fam := range families {
		t.Run(fam, func(t *testing.T) {
			t.Parallel()
			res := run{variant: fam, store: store, knobs: knobs()}.exec(t)
			if res.rc != 0 || res.stdout != "No backup generation files found in: /var/backups/bluemind\n" {
				t.Fatalf("rc %d stdout %q stderr %q", res.rc, res.stdout, res.stderr)
			}
		})
	}
}

func TestFalseSuccess_NoDirectoryForAnyLocalIP(t *testing.T) {
	store := tree{gens: standardGens()}.write(t)
	for _, fam := range families {
		t.Run(fam, func(t *testing.T) {
			t.Parallel()
			res := run{variant: fam, store: store, knobs: knobs("IPS", "10.1.1.1,10.1.1.2"), stdin: "2\n"}.exec(t)
			want := "No BlueMind backup data found for this host in /var/backups/bluemind/dp_spool/rsync !\n"
			if res.rc != 0 || res.stderr != want || res.stdout != "" {
				t.Fatalf("rc %d stdout %q stderr %q", res.rc, res.stdout, res.stderr)
			}
		})
	}
}

func TestFalseSuccess_Bm5SkipsMailData(t *testing.T) {
	store := tree{gens: standardGens()}.write(t)
	res := run{variant: "bm5", store: store, knobs: knobs("IPS", dataIP), stdin: "2\n"}.exec(t)
	if res.rc != 0 {
		t.Fatalf("rc %d stderr %q", res.rc, res.stderr)
	}
	if !strings.Contains(res.stdout, "This server is tagged as mail/imap\n\n**** RESTORE CYRUS SERVICE ****\n") {
		t.Errorf("bm5 must print the cyrus header: %q", res.stdout)
	}
	if strings.Contains(res.stdout, "Cyrus") && strings.Contains(res.stdout, "Restoring Cyrus") {
		t.Errorf("bm5 must not restore cyrus: %q", res.stdout)
	}
	want := []string{
		"Stopping BlueMind Node service", "Restoring BlueMind Node configuration",
		"Restoring BlueMind common configuration", "Fix owner of bm-core.tok file",
		"Fix permission of bm-core.tok file",
		"Restoring PostgreSQL configuration", "Fixing PostgreSQL configuration rights",
		"Stopping PostGreSQL", "Stopping Telegraf", "Starting PostGreSQL",
		"Dropping BlueMind database bj-data", "Creating empty BlueMind database bj-data",
		"Convert SQL DUMP to SQL File", "Restaure DB bj-data", "Stopping Telegraf",
		"Starting BlueMind Node service", "Starting BlueMind services",
	}
	if got := steps(res.stdout); !slices.Equal(got, want) {
		t.Errorf("steps:\n got %q\nwant %q", got, want)
	}
}

func TestSanity_MissingPartFailsWithCoreMessage(t *testing.T) {
	cases := []struct {
		fam    string
		remove []int // parts whose directory is absent
	}{
		{"bm4es", []int{2044}},     // bm/es
		{"bm4", []int{2041, 2047}}, // every bm/conf
		{"legacy", []int{2042}},    // bm/core
	}
	for _, c := range cases {
		t.Run(c.fam, func(t *testing.T) {
			t.Parallel()
			on := map[int]bool{}
			for _, p := range standardGens()[0].Parts {
				on[p.ID] = !slices.Contains(c.remove, p.ID)
			}
			store := tree{gens: standardGens(), onDisk: on}.write(t)
			res := run{variant: c.fam, store: store, knobs: knobs(), stdin: "2\n"}.exec(t)
			if res.rc != 1 || res.stderr != "No backup for tag bm/core found, unable to restore BlueMind data\n" {
				t.Fatalf("rc %d stderr %q", res.rc, res.stderr)
			}
		})
	}
}

func TestSteps_CoreNodePerFamily(t *testing.T) {
	store := tree{gens: standardGens()}.write(t)
	conf := []string{"Stopping BlueMind Node service", "Restoring BlueMind Node configuration",
		"Restoring BlueMind common configuration", "Fix owner of bm-core.tok file",
		"Fix permission of bm-core.tok file"}
	core := func(hps bool) []string {
		s := []string{"Stopping BlueMind services"}
		if hps {
			s = append(s, "Restoring BlueMind HPS configuration")
		}
		return append(s, "Restoring BlueMind Postfix configuration",
			"Restoring BlueMind Hollow Directory configuration", "Restoring BlueMind certificate file")
	}
	pg := func(es bool) []string {
		s := []string{"Restoring PostgreSQL configuration", "Fixing PostgreSQL configuration rights"}
		if es {
			s = append(s, "Stopping PostGreSQL", "Stopping Telegraf", "Starting PostGreSQL")
		} else {
			s = append(s, "Restarting PostGreSQL")
		}
		s = append(s, "Dropping BlueMind database", "Creating empty BlueMind database",
			"Convert SQL DUMP to SQL File", "Restaure DB bj", "Reset BlueMind SW password")
		if es {
			s = append(s, "Starting Telegraf")
		}
		return s
	}
	esSteps := func(es bool) []string {
		s := []string{"Restoring ES configuration", "Cleanup ES repo", "Copy backup to ES repo", "chown ES repo"}
		if es {
			s = append(s, "Restarting Elasticsearch", "Waiting for ES cluster is up")
		}
		return append(s, "Restoring ES index files")
	}
	imap := []string{"Restoring BlueMind certificate file", "Restoring cyrus.conf file",
		"Restoring imapd.conf file", "Restoring cyrus-admins file", "Restoring cyrus-partitions file",
		"Restoring Cyrus lib files", "Restoring Cyrus spool files", "Fixing Cyrus files rights"}
	start := []string{"Starting BlueMind Node service", "Starting BlueMind services"}
	cat := func(parts ...[]string) []string { return slices.Concat(parts...) }
	want := map[string][]string{
		"bm4":   cat(conf, core(true), pg(false), esSteps(false), []string{"Restoring BlueMind filehosting directory"}, imap, start),
		"bm4es": cat(conf, core(true), pg(true), esSteps(true), []string{"Restoring BlueMind filehosting directory"}, imap, start),
		"bm5":   cat(conf, core(false), pg(true), esSteps(true), []string{"Restoring BlueMind filehosting directory"}, start),
		"legacy": cat([]string{"Stopping BlueMind services", "Stopping BlueMind Node service",
			"Restoring BlueMind common configuration", "Restoring BlueMind Node configuration",
			"Fix owner of bm-core.tok file", "Fix permission of bm-core.tok file",
			"Restoring BlueMind certificate file",
			"Restoring BlueMind HPS configuration", "Restoring BlueMind Postfix configuration",
			"Restoring PostgreSQL configuration", "Fixing PostgreSQL configuration rights",
			"Restarting PostGreSQL", "Dropping BlueMind database", "Creating empty BlueMind database",
			"Loading BlueMind database dump", "Reset BlueMind SW password"},
			esSteps(false), []string{"Restoring BlueMind filehosting directory"},
			imap[1:], start),
	}
	headers := []string{"COMMON CONFIGURATION", "CORE SERVICE", "BJ DATABASE", "ELASTICSEARCH SERVICE",
		"FILEHOSTING SERVICE", "CYRUS SERVICE"}
	for _, fam := range families {
		t.Run(fam, func(t *testing.T) {
			t.Parallel()
			res := run{variant: fam, store: store, knobs: knobs(), stdin: "2\n",
				after: []string{"cat /var/lib/fake-bm-pra/last-restore.json"}}.exec(t)
			if res.rc != 0 {
				t.Fatalf("rc %d stderr %q", res.rc, res.stderr)
			}
			var st struct{ Tags []string }
			wantTags := []string{"bm/conf", "bm/core", "bm/pgsql", "bm/es", "filehosting/data", "mail/imap"}
			if fam == "legacy" { // legacy does not know bm/conf: it prints the path only
				wantTags = wantTags[1:]
			}
			if err := json.Unmarshal([]byte(res.after[0]), &st); err != nil || !slices.Equal(st.Tags, wantTags) {
				t.Errorf("state tags %q (%v), want %q", st.Tags, err, wantTags)
			}
			if got := steps(res.stdout); !slices.Equal(got, want[fam]) {
				t.Errorf("steps:\n got %q\nwant %q", got, want[fam])
			}
			if fam == "legacy" {
				for _, tag := range []string{"bm/conf", "bm/pgsql-data", "mail/imap"} {
					if !strings.Contains(res.stdout, "This server is not tagget as "+tag+"\n") {
						t.Errorf("legacy must print the not-tagget line of the data node's %s", tag)
					}
				}
				if !strings.Contains(res.stdout, "\n/var/backups/bluemind/dp_spool/rsync/"+coreIP+"/bm/conf/2041\n") {
					t.Errorf("legacy prints the path of a present part of unknown tag: %q", res.stdout)
				}
				if strings.Contains(res.stdout, "****") || strings.Contains(res.stdout, "tagged as") {
					t.Errorf("legacy has no headers")
				}
				return
			}
			var hs []string
			for _, m := range regexp.MustCompile(`This server is tagged as (\S+)\n\n\*\*\*\* RESTORE (.*) \*\*\*\*\n`).FindAllStringSubmatch(res.stdout, -1) {
				hs = append(hs, m[2])
			}
			if !slices.Equal(hs, headers) {
				t.Errorf("headers got %q want %q", hs, headers)
			}
			if strings.Count(res.stdout, "This server is tagged as") != 6 {
				t.Errorf("parts of the other node must be skipped silently: %q", res.stdout)
			}
			if !strings.Contains(res.stdout, "\n**** STARTING BLUEMIND SERVICES ****\n\rStarting BlueMind Node service") {
				t.Errorf("missing start header: %q", res.stdout)
			}
		})
	}
}

func TestMenu_DelayKnobPostponesTheFirstMenu(t *testing.T) {
	store := tree{gens: standardGens()}.write(t)
	start := time.Now()
	res := run{variant: "bm4", store: store, knobs: knobs("MENU_DELAY", "1", "MAX_MENUS", "1")}.exec(t)
	// A lower bound only: the script cannot show its menu before the delay.
	if res.rc != 99 || time.Since(start) < time.Second {
		t.Fatalf("rc %d after %v", res.rc, time.Since(start))
	}
}

func TestSteps_SpinnerFramesThenOK(t *testing.T) {
	store := tree{gens: standardGens()}.write(t)
	res := run{variant: "bm4es", store: store, stdin: "2\n",
		knobs: knobs("STEP_SECONDS", "0.01", "STEP_DURATIONS", "Restaure DB bj=0.05")}.exec(t)
	m := regexp.MustCompile(`(\rRestaure DB bj [-\\|/])+\rRestaure DB bj OK\n`).FindString(res.stdout)
	// Sleeps never end early, so a 0.05 s step at 0.01 s ticks shows at most 5 frames;
	// a loaded machine may show fewer, never none, always in the -\|/ order.
	frames := strings.Count(m, "\rRestaure DB bj ") - 1
	if frames < 1 || frames > 5 {
		t.Fatalf("want 1-5 spinner frames, got %d in %q", frames, m)
	}
	if want := "\rRestaure DB bj -\rRestaure DB bj \\\rRestaure DB bj |\rRestaure DB bj /\rRestaure DB bj -"; !strings.HasPrefix(want, m[:strings.LastIndex(m, "\r")]) {
		t.Errorf("spinner must cycle -\\|/: %q", m)
	}
	// STEP_SECONDS=0 with a long step ticks every 0.5 s instead of busy-looping.
	res = run{variant: "bm4es", store: store, stdin: "2\n",
		knobs: knobs("STEP_DURATIONS", "Restaure DB bj=1")}.exec(t)
	m = regexp.MustCompile(`(\rRestaure DB bj [-\\|/])+\rRestaure DB bj OK\n`).FindString(res.stdout)
	if n := strings.Count(m, "\rRestaure DB bj ") - 1; n < 1 || n > 2 {
		t.Errorf("1 s step at STEP_SECONDS=0: want 1-2 frames, got %d (%q)", n, m)
	}
}

func TestFailStep_PropagatesRCAndStops(t *testing.T) {
	store := tree{gens: standardGens()}.write(t)
	for _, fam := range []string{"bm4es", "legacy"} {
		t.Run(fam, func(t *testing.T) {
			t.Parallel()
			res := run{variant: fam, store: store, stdin: "2\n",
				knobs: knobs("FAIL_STEP", "Restoring ES configuration", "FAIL_RC", "7")}.exec(t)
			if res.rc != 7 {
				t.Fatalf("rc %d, want 7", res.rc)
			}
			if !strings.HasSuffix(res.stdout, "\rRestoring ES configuration FAIL (7)\n") {
				t.Errorf("stdout must end with the FAIL line: %q", res.stdout)
			}
		})
	}
}

func TestHangStep_SpinsForever(t *testing.T) {
	store := tree{gens: standardGens()}.write(t)
	out := run{variant: "bm4es", store: store, stdin: "2\n",
		knobs: knobs("STEP_SECONDS", "0.01", "HANG_STEP", "Waiting for ES cluster is up")}.stream(t)
	frames := 0
	for frames < 100 {
		seg, err := out.ReadString('\r')
		if err != nil {
			t.Fatalf("after %d frames: %v", frames, err)
		}
		if strings.HasPrefix(seg, "Waiting for ES cluster is up ") {
			if want := "Waiting for ES cluster is up " + string("-\\|/"[frames%4]) + "\r"; seg != want {
				t.Fatalf("frame %d: got %q want %q", frames, seg, want)
			}
			frames++
		}
	}
}

func TestLog_AbsolutePathCrashesButCdAndBareNameWorks(t *testing.T) {
	store := tree{gens: standardGens()}.write(t)
	for _, fam := range []string{"bm4", "bm4es", "bm5"} {
		t.Run(fam, func(t *testing.T) {
			t.Parallel()
			res := run{variant: fam, store: store, knobs: knobs(), stdin: "2\n",
				invoke: "/usr/share/bm-node/bm-pra-restore.py", after: []string{"ls /usr/share/bm-node"}}.exec(t)
			re := regexp.MustCompile(`(?s)^Traceback \(most recent call last\):\n.*\nIOError: \[Errno 2\] No such file or directory: '\d\d-\d\d-\d{4}-\d\d-\d\d-\d\d/usr/share/bm-node/bm-pra-restore\.py\.log'\n$`)
			if res.rc != 1 || res.stdout != "" || !re.MatchString(res.stderr) {
				t.Fatalf("rc %d stdout %q stderr %q", res.rc, res.stdout, res.stderr)
			}
			res = run{variant: fam, store: store, knobs: knobs(), stdin: "2\n",
				after: []string{"cd /usr/share/bm-node && ls *.log && head -n 3 *bm-pra-restore.py.log"}}.exec(t)
			if res.rc != 0 {
				t.Fatalf("safe invocation: rc %d stderr %q", res.rc, res.stderr)
			}
			if !regexp.MustCompile(`^\d\d-\d\d-\d{4}-\d\d-\d\d-\d\dbm-pra-restore\.py\.log\nStarting PRA\n-{22}\nRunning command: \['service', 'bm-node', 'stop'\]\n$`).MatchString(res.after[0]) {
				t.Errorf("log: %q", res.after[0])
			}
		})
	}
	t.Run("legacy", func(t *testing.T) {
		t.Parallel()
		res := run{variant: "legacy", store: store, knobs: knobs(), stdin: "2\n",
			invoke: "/usr/share/bm-node/bm-pra-restore.py",
			after:  []string{"head -n 3 /usr/share/bm-node/bm-pra-restore.py.log"}}.exec(t)
		if res.rc != 0 || res.after[0] != "Starting PRA\n----------------------\nRunning command: ['bmctl', 'stop']\n" {
			t.Fatalf("rc %d log %q stderr %q", res.rc, res.after[0], res.stderr)
		}
	})
}

func TestHostIP_FirstLocalAddressWithADirectoryWinsEvenLoopback(t *testing.T) {
	// No IPS knob: the real "ip addr" of a --network none container lists only 127.0.0.1,
	// and a dp_spool/rsync/127.0.0.1 directory hijacks the host detection.
	gens := []generation{{ID: 5, PT: pt312, Name: "4.8.2", Parts: []part{
		{1, "bm/conf", "127.0.0.1"}, {2, "bm/es", "127.0.0.1"}}}}
	store := tree{gens: gens}.write(t)
	res := run{variant: "bm4", store: store, knobs: map[string]string{"STEP_SECONDS": "0"}, stdin: "1\n",
		after: []string{"cat /var/lib/fake-bm-pra/last-restore.json"}}.exec(t)
	if res.rc != 0 || !strings.Contains(res.after[0], `"hostIp": "127.0.0.1"`) {
		t.Fatalf("rc %d stderr %q state %q", res.rc, res.stderr, res.after[0])
	}
}

func TestApply_RestoresFilesAndWritesState(t *testing.T) {
	store := tree{gens: standardGens()}.write(t)
	res := run{variant: "bm4es", store: store, stdin: "2\n", knobs: knobs("APPLY", "1"),
		after: []string{
			"cat /var/lib/fake-bm-pra/last-restore.json",
			"cat /etc/bm/bm.ini",
			"stat -c '%a %U:%G' /etc/bm/bm-core.tok",
			"cat /etc/ssl/certs/bm_cert.pem",
			"cat /var/lib/fake-bm-pra/bj.restored /var/lib/fake-bm-pra/es.restored",
			"cat /var/spool/cyrus/data/lab_invalid/domain/l/lab.invalid/u/user/alice/1. /var/spool/bm-filehosting/a/file1 /etc/postfix/main.cf",
			"cat /var/log/fake-bm/bmctl.log | cut -d' ' -f2-",
		}}.exec(t)
	if res.rc != 0 {
		t.Fatalf("rc %d stderr %q", res.rc, res.stderr)
	}
	var st struct {
		Variant        string   `json:"variant"`
		GenerationID   int      `json:"generationId"`
		ProtectionTime int64    `json:"protectionTime"`
		HostIP         string   `json:"hostIp"`
		Tags           []string `json:"tags"`
		PartIDs        []int    `json:"partIds"`
		FinishedAt     string   `json:"finishedAt"`
	}
	if err := json.Unmarshal([]byte(res.after[0]), &st); err != nil {
		t.Fatalf("state file %q: %v", res.after[0], err)
	}
	if st.Variant != "bm4es" || st.GenerationID != 312 || st.ProtectionTime != pt312 || st.HostIP != coreIP ||
		!slices.Equal(st.PartIDs, []int{2041, 2042, 2043, 2044, 2045, 2046}) ||
		!slices.Equal(st.Tags, []string{"bm/conf", "bm/core", "bm/pgsql", "bm/es", "filehosting/data", "mail/imap"}) ||
		st.FinishedAt == "" {
		t.Errorf("state: %+v", st)
	}
	wants := []string{"",
		"[global]\nexternal-url = restored.lab.invalid\nhost = " + coreIP + "\n",
		"440 root:www-data\n",
		"-----BEGIN CERTIFICATE-----\nfake\n-----END CERTIFICATE-----\n",
		"2043\n2044\n",
		"Subject: hi\n\nbody\ndata\nmyhostname = restored.lab.invalid\n",
		"bmctl stop\nbmctl start\n",
	}
	for i, w := range wants[1:] {
		if res.after[i+1] != w {
			t.Errorf("after %d: got %q want %q", i+1, res.after[i+1], w)
		}
	}
}

func TestApply_OffTouchesNothingButTheStateFile(t *testing.T) {
	store := tree{gens: standardGens()}.write(t)
	res := run{variant: "bm4es", store: store, stdin: "2\n", knobs: knobs("STATE_FILE", "/tmp/st.json"),
		after: []string{"test -e /etc/bm/bm.ini && echo present; ls /var/lib/fake-bm-pra; test -s /tmp/st.json && echo state",
			// Service steps always drive the fake bmctl/service (state files only).
			"bmctl status >/dev/null && cut -d' ' -f2- /var/log/fake-bm/bmctl.log /var/log/fake-bm/service.log"}}.exec(t)
	if res.rc != 0 || res.after[0] != "state\n" {
		t.Fatalf("rc %d after %q", res.rc, res.after[0])
	}
	if want := "bmctl stop\nbmctl start\nbmctl status\nservice bm-node stop\nservice bm-node start\n"; res.after[1] != want {
		t.Errorf("service calls: got %q want %q", res.after[1], want)
	}
}

func TestPython3_CrashesLikeTheRealScript(t *testing.T) {
	store := tree{gens: standardGens()}.write(t)
	check := func(t *testing.T, fam string, res result) {
		t.Helper()
		if res.rc != 1 || res.stdout != "" {
			t.Fatalf("rc %d stdout %q stderr %q", res.rc, res.stdout, res.stderr)
		}
		last := "TypeError: a bytes-like object is required, not 'str'\n"
		if fam == "legacy" {
			last = "SyntaxError: Missing parentheses in call to 'print'. Did you mean print(...)?\n"
		}
		if !strings.HasSuffix(res.stderr, last) {
			t.Errorf("stderr %q, want suffix %q", res.stderr, last)
		}
	}
	for _, fam := range []string{"legacy", "bm4es"} {
		t.Run("knob/"+fam, func(t *testing.T) {
			t.Parallel()
			check(t, fam, run{variant: fam, store: store, knobs: knobs("PY3_CRASH", "1"), stdin: "2\n"}.exec(t))
		})
		t.Run("bookworm/"+fam, func(t *testing.T) {
			t.Parallel()
			check(t, fam, run{suite: "bookworm", variant: fam, store: store, knobs: knobs(), stdin: "2\n"}.exec(t))
		})
	}
}

func TestFamilyMarkers_GrepDetectsEachFamily(t *testing.T) {
	cmd := `S=/usr/share/bm-node/bm-pra-restore.py; for v in legacy bm4 bm4es bm5; do lab-set-variant $v; ` +
		`echo "$v $(grep -c dt_string $S) $(grep -c tagget $S) $(grep -c 'THIS WILL NOT WORK' $S) ` +
		`$(grep -c 'Waiting for ES cluster is up' $S) $(grep -o 'postgresql/[0-9]*/' $S | sort -u | tr '\n' ' ')` +
		`$(stat -c %a $S) $(head -n1 $S)"; done`
	res := run{variant: "bm4", invoke: cmd}.exec(t)
	want := "legacy 0 2 0 0 postgresql/11/ 755 #!/usr/bin/python\n" +
		"bm4 2 0 0 0 postgresql/12/ 755 #!/usr/bin/python\n" +
		"bm4es 2 0 0 1 postgresql/14/ 755 #!/usr/bin/python\n" +
		"bm5 2 0 1 1 postgresql/15/ 755 #!/usr/bin/python\n"
	if res.stdout != want {
		t.Fatalf("markers:\n got %q\nwant %q", res.stdout, want)
	}
}

func TestGenerations_BadJSONIgnoredDuplicatesCollapsedMissingKeyCrashes(t *testing.T) {
	gens := standardGens()
	dup := gens[0]
	dup.ID = 399 // same protectionTime as 312
	store := tree{gens: append(gens, dup), extra: map[string]string{"generation-398.json": "{bad"}}.write(t)
	res := run{variant: "bm4es", store: store, knobs: knobs("MAX_MENUS", "1"), tz: "UTC"}.exec(t)
	if res.rc != 99 || res.stdout != menuBytes("bm4es", time.UTC, gens[1], gens[0]) {
		t.Errorf("rc %d menu %q", res.rc, res.stdout)
	}
	if !regexp.MustCompile(`^Ignoring file: /var/backups/bluemind/generation-398\.json - .+\n$`).MatchString(res.stderr) {
		t.Errorf("stderr %q", res.stderr)
	}

	store = tree{gens: gens, extra: map[string]string{"generation-397.json": `{"id":397,"withErrors":false}`}}.write(t)
	res = run{variant: "bm4es", store: store, knobs: knobs(), stdin: "1\n"}.exec(t)
	if res.rc != 1 || !strings.HasSuffix(res.stderr, "KeyError: 'protectionTime'\n") {
		t.Errorf("missing protectionTime: rc %d stderr %q", res.rc, res.stderr)
	}
}

func TestGenerations_AllInvalidGivesAPromptThatCannotBeSatisfied(t *testing.T) {
	store := tree{extra: map[string]string{"generation-1.json": "nope",
		"dp_spool/rsync/" + coreIP + "/bm/conf/1/x": ""}}.write(t)
	res := run{variant: "bm4", store: store, knobs: knobs("MAX_MENUS", "3"), stdin: "1\n0\n\n"}.exec(t)
	if res.rc != 99 || res.stdout != strings.Repeat("\nChoose backup generation to restore (1-0): \n", 3) {
		t.Errorf("rc %d stdout %q", res.rc, res.stdout)
	}
}

func TestOutput_ClosedStdoutKillsTheRestoreWithBrokenPipe(t *testing.T) {
	store := tree{gens: standardGens()}.write(t)
	res := run{variant: "bm4es", store: store, knobs: knobs(), stdin: "2\n",
		invoke: `cd /usr/share/bm-node && bash -c 'python bm-pra-restore.py | head -c 300 >/dev/null; echo "rc=${PIPESTATUS[0]}"'`,
		after:  []string{"test -e /var/lib/fake-bm-pra/last-restore.json && echo finished || echo unfinished"}}.exec(t)
	if res.stdout != "rc=1\n" || !strings.HasSuffix(res.stderr, "IOError: [Errno 32] Broken pipe\n") ||
		res.after[0] != "unfinished\n" {
		t.Errorf("stdout %q stderr %q after %q", res.stdout, res.stderr, res.after)
	}
}

func TestVariantKnob_OverridesTheInstalledFamily(t *testing.T) {
	store := tree{gens: standardGens()}.write(t)
	// A bm4 file told to behave as legacy, then as bm5: the texts of those families.
	res := run{variant: "bm4", store: store, knobs: knobs("VARIANT", "legacy"), stdin: "2\n"}.exec(t)
	if res.rc != 0 || !strings.Contains(res.stdout, "This server is not tagget as mail/imap\n") ||
		!strings.HasPrefix(res.stdout, "1\t") || !strings.Contains(res.stdout, "status: Ending with errors\n2\t") {
		t.Errorf("VARIANT=legacy: rc %d %q", res.rc, res.stdout)
	}
	res = run{variant: "bm4", store: store, knobs: knobs("VARIANT", "bm5", "IPS", dataIP), stdin: "2\n"}.exec(t)
	// bm5 on the data node: no cyrus restore, and the bj-data telegraf steps of bm4-es+.
	if res.rc != 0 || strings.Contains(res.stdout, "Restoring Cyrus") ||
		strings.Count(res.stdout, "\rStopping Telegraf OK\n") != 2 {
		t.Errorf("VARIANT=bm5: rc %d %q", res.rc, res.stdout)
	}
}
