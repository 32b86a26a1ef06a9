
# ---------------------------------------------------------------------------------------
# Common engine of the fake script (appended after the family header by lab-set-variant).
# Syntax valid for Python 2 and 3: only the legacy header is Python-2-only, like the real
# legacy script; the bm4+ families crash under Python 3 in the "ip addr" parsing (bytes
# versus str), like the real ones. Nothing here is a family marker: markers live in the
# headers so that family detection by grep stays exact.
# ---------------------------------------------------------------------------------------

import glob
import json
import os
import shutil
import subprocess
import sys
import time

BM_BACKUP_DIR = "/var/backups/bluemind"
BM_BACKUP_RSYNC_ROOT = BM_BACKUP_DIR + "/dp_spool/rsync"
KNOBS_FILE = "/etc/fake-bm-pra.conf"

HEADERS = {
    "bm/conf": "COMMON CONFIGURATION",
    "bm/core": "CORE SERVICE",
    "bm/pgsql": "BJ DATABASE",
    "bm/pgsql-data": "BJ-DATA DATABASE",
    "bm/es": "ELASTICSEARCH SERVICE",
    "mail/imap": "CYRUS SERVICE",
    "mail/archive": "HSM",
    "filehosting/data": "FILEHOSTING SERVICE",
}

DEFAULT_PG = {"legacy": "11", "bm4": "12", "bm4es": "14", "bm5": "15"}


def read_knobs():
    knobs = {}
    try:
        f = open(KNOBS_FILE)
        for line in f.read().splitlines():
            line = line.strip()
            if not line or line.startswith("#") or "=" not in line:
                continue
            k, v = line.split("=", 1)
            knobs[k.strip().upper()] = v.strip()
        f.close()
    except (IOError, OSError):
        pass
    for k, v in os.environ.items():
        if k.startswith("FAKE_PRA_"):
            knobs[k[len("FAKE_PRA_"):]] = v
    return knobs


KNOBS = read_knobs()


def knob(name, default=None):
    v = KNOBS.get(name)
    if v is None or v == "":
        return default
    return v


def knob_float(name, default):
    try:
        return float(knob(name, default))
    except ValueError:
        return float(default)


VARIANT = knob("VARIANT", FAMILY)
PG = knob("PG_VERSION", globals().get("PG_DEFAULT") or DEFAULT_PG.get(VARIANT, "14"))
STEP_SECONDS = knob_float("STEP_SECONDS", "0.5")
FAIL_STEP = knob("FAIL_STEP")
FAIL_RC = int(knob("FAIL_RC", "1"))
HANG_STEP = knob("HANG_STEP")
APPLY = knob("APPLY", "0") == "1"
STATE_FILE = knob("STATE_FILE", "/var/lib/fake-bm-pra/last-restore.json")
MAX_MENUS = int(knob("MAX_MENUS", "0"))
IPS = knob("IPS")
MENU_DELAY = knob_float("MENU_DELAY", "0")
PY3_CRASH = knob("PY3_CRASH", "0") == "1"
# Lab extension: during the step FLOOD_STEP, print exactly FLOOD_BYTES bytes of
# rsync-like lines to stdout, as fast as the pipe takes them (memory benchmark
# of whoever reads the script's output).
FLOOD_STEP = knob("FLOOD_STEP")
try:
    FLOOD_BYTES = int(knob("FLOOD_BYTES", "0"))
except ValueError:
    FLOOD_BYTES = 0
MARKER_DIR = "/var/lib/fake-bm-pra"

STEP_DURATIONS = {}
for _item in (knob("STEP_DURATIONS", "") or "").split(";"):
    if "=" in _item:
        _d, _s = _item.rsplit("=", 1)
        try:
            STEP_DURATIONS[_d.strip()] = float(_s)
        except ValueError:
            pass

LEGACY = VARIANT == "legacy"
ES_WAIT = VARIANT in ("bm4es", "bm5")
BM5 = VARIANT == "bm5"

# Texts of other families, used only when the VARIANT knob overrides the installed family.
# Built by concatenation so that this engine never carries a family marker itself.
FALLBACK_NOT_TAGGED = "This server is not tag" + "get as %s\n"
FALLBACK_ES_STEPS = ("Restarting Elastic" + "search", "Waiting for ES " + "cluster is up")
FALLBACK_TELEGRAF = ("Stopping Tele" + "graf", "Starting Tele" + "graf")

# Filled while restoring, written to STATE_FILE on success.
RESTORED = {"tags": [], "partIds": []}


def fake_py3_traceback():
    """Print what the real script prints when /usr/bin/python is Python 3, exit 1."""
    me = sys.argv[0]
    if LEGACY:
        line = 0
        try:
            for i, text in enumerate(open(__file__).read().splitlines()):
                if text.strip().startswith('print "'):
                    line = i + 1
                    break
        except (IOError, OSError, NameError):
            pass
        sys.stderr.write('  File "%s", line %d\n' % (me, line))
        sys.stderr.write('    print "usage: bm-pra-restore.py"\n')
        sys.stderr.write("          ^\n")
        sys.stderr.write("SyntaxError: Missing parentheses in call to 'print'. "
                         "Did you mean print(...)?\n")
    else:
        sys.stderr.write("Traceback (most recent call last):\n")
        sys.stderr.write('  File "%s", line 60, in <module>\n' % me)
        sys.stderr.write("    ip = getHostIp()\n")
        sys.stderr.write('  File "%s", line 41, in getHostIp\n' % me)
        sys.stderr.write('    for line in out.split("\\n"):\n')
        sys.stderr.write("TypeError: a bytes-like object is required, not 'str'\n")
    sys.stderr.flush()
    sys.exit(1)


def run_real(argv):
    """Run a harmless command for APPLY=1; its failure does not fail the fake step."""
    try:
        p = subprocess.Popen(argv, stdout=LOG, stderr=subprocess.STDOUT)
        p.wait()
    except OSError as e:
        LOG.write("fake: cannot run %r: %s\n" % (argv, e))


class Service(object):
    """Effect of a service start/stop step: the fake bmctl/service only flip state files,
    so they run even without APPLY=1 and prapush sees BlueMind stopped then started
    (e.g. the core API answers again after the restore)."""

    def __init__(self, argv):
        self.argv = argv


def write_marker(name, value):
    if not os.path.isdir(MARKER_DIR):
        os.makedirs(MARKER_DIR)
    f = open(os.path.join(MARKER_DIR, name), "w")
    f.write("%s\n" % value)
    f.close()


def copy_tree(src, dst, delete=False):
    if not os.path.isdir(src):
        return
    if not os.path.isdir(dst):
        os.makedirs(dst)
    argv = ["rsync", "-aH"]
    if delete:
        argv.append("--delete")
    run_real(argv + [src.rstrip("/") + "/", dst.rstrip("/") + "/"])


def copy_file(src, dst):
    if os.path.isfile(src):
        d = os.path.dirname(dst)
        if not os.path.isdir(d):
            os.makedirs(d)
        shutil.copy2(src, dst)


def flood(n):
    """Write exactly n bytes of verbose-rsync-like lines to stdout, in 64 KiB writes."""
    lines = []
    size = 0
    i = 0
    while size < 65536:
        line = "var/spool/cyrus/data/lab_example/domain/l/lab.example/u/user%04d/%d. " \
               "(%d bytes) sent %d received 35 bytes\n" % (i % 997, i, 1024 + i * 7 % 9000, 880 + i)
        lines.append(line)
        size += len(line)
        i += 1
    block = "".join(lines)
    while n > len(block):
        sys.stdout.write(block)
        n -= len(block)
    if n > 0:
        # The last write is cut to the byte, and still ends a line.
        sys.stdout.write(block[:n - 1] + "\n")
    sys.stdout.flush()


def execCmd(log, argv, desc, effect=None):
    """Log the command the real script would run, spin for the step duration, end OK/FAIL."""
    log.write("----------------------\n")
    log.write("Running command: %r\n" % (argv,))
    log.flush()
    duration = STEP_DURATIONS.get(desc, STEP_SECONDS)
    hang = HANG_STEP is not None and desc == HANG_STEP
    spin = "-\\|/"
    # One frame per tick while the "command" runs, at least one (as the real spinner);
    # STEP_SECONDS=0 means instantaneous steps, ticking at 0.5 s if a step still lasts.
    tick = STEP_SECONDS if STEP_SECONDS > 0 else 0.5
    i = 0
    start = time.time()
    if FLOOD_STEP is not None and desc == FLOOD_STEP and FLOOD_BYTES > 0:
        # Before the first frame: the flood starts on a line of its own.
        flood(FLOOD_BYTES)
    while True:
        sys.stdout.write("\r%s %s" % (desc, spin[i % 4]))
        sys.stdout.flush()
        i += 1
        if hang:
            time.sleep(tick)
            continue
        remaining = duration - (time.time() - start)
        if remaining <= 0:
            break
        time.sleep(min(tick, remaining))
        if time.time() - start >= duration:
            break
    if FAIL_STEP is not None and desc == FAIL_STEP:
        log.write("fake: step failed with rc %d\n" % FAIL_RC)
        log.flush()
        sys.stdout.write("\r%s FAIL (%d)\n" % (desc, FAIL_RC))
        sys.stdout.flush()
        sys.exit(FAIL_RC)
    if isinstance(effect, Service):
        run_real(effect.argv)
    elif APPLY and effect is not None:
        effect()
    sys.stdout.write("\r%s OK\n" % desc)
    sys.stdout.flush()


def getHostIp():
    if IPS:
        text = "".join("    inet %s/32 scope global fake\n" % ip.strip()
                       for ip in IPS.split(",") if ip.strip())
        out = text.encode("ascii")
    else:
        out = subprocess.Popen(["ip", "addr"], stdout=subprocess.PIPE).communicate()[0]
    if PY3_CRASH:
        fake_py3_traceback()
    # On Python 3, out is bytes: this split raises TypeError, as the real script does.
    for line in out.split("\n"):
        if line.find("inet ") != -1:
            ip = line.split()[1].split("/")[0]
            if os.path.isdir(os.path.join(BM_BACKUP_RSYNC_ROOT, ip)):
                return ip
    return None


def read_generations():
    files = glob.glob(BM_BACKUP_DIR + "/generation-*.json")
    if not files:
        sys.stdout.write("No backup generation files found in: %s\n" % BM_BACKUP_DIR)
        sys.stdout.flush()
        sys.exit(0)
    gens = {}
    for path in files:
        f = open(path)
        try:
            try:
                g = json.load(f)
            except ValueError as e:
                sys.stderr.write("Ignoring file: %s - %s\n" % (path, e))
                continue
        finally:
            f.close()
        gens[g["protectionTime"]] = g
    return gens


def status_of(g):
    if g["withErrors"]:
        return "Ending with errors"
    if g["withWarnings"]:
        return "Ending with warnings"
    return "OK"


def choose_generation(gens):
    keys = list(gens.keys())
    keys.sort()
    n = len(keys)
    menus = 0
    if MENU_DELAY > 0:
        # Lab extension: a slow start before the first menu (menu timeout tests).
        time.sleep(MENU_DELAY)
    while True:
        for i, k in enumerate(keys):
            g = gens[k]
            date = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(k // 1000))
            entry = "%d\t%s\t%s\tstatus: %s" % (i + 1, date, g["blueMind"]["displayName"],
                                                  status_of(g))
            if LEGACY:
                sys.stdout.write(entry + "\n")
            else:
                sys.stdout.write(entry)
        prompt = "Choose backup generation to restore (1-%d): " % n
        if LEGACY:
            sys.stdout.write(prompt)
        else:
            sys.stdout.write("\n" + prompt + "\n")
        sys.stdout.flush()
        menus += 1
        line = sys.stdin.readline()
        try:
            idx = int(line) - 1
            if 0 <= idx < n:
                return gens[keys[idx]]
        except ValueError:
            pass
        if MAX_MENUS > 0 and menus >= MAX_MENUS:
            sys.exit(99)


def part_dirs(tag, pid):
    return glob.glob(os.path.join(BM_BACKUP_RSYNC_ROOT, "*", tag, str(pid)))


def sanity(gen):
    needed = ["bm/core"] if LEGACY else ["bm/conf", "bm/es"]
    for tag in needed:
        found = False
        for p in gen["parts"]:
            if p["tag"] == tag and part_dirs(tag, p["id"]):
                found = True
        if LEGACY and not glob.glob(os.path.join(BM_BACKUP_RSYNC_ROOT, "*", "bm", "core", "*")):
            found = False
        if not found:
            sys.stderr.write("No backup for tag bm/core found, unable to restore BlueMind data\n")
            sys.stderr.flush()
            sys.exit(1)


# ------------------------------- steps per tag ------------------------------------------

def conf_etc(conf_part):
    return os.path.join(conf_part, "var/backups/bluemind/work/conf/etc")


def fix_token():
    tok = "/etc/bm/bm-core.tok"
    if os.path.exists(tok):
        run_real(["chown", "root:www-data", tok])
        os.chmod(tok, 0o440)


def steps_common_conf(log, etc, legacy):
    """bm/conf (bm4+) or the legacy pre-loop configuration restore."""
    if legacy:
        execCmd(log, ["bmctl", "stop"], "Stopping BlueMind services",
                Service(["bmctl", "stop"]))
    execCmd(log, ["service", "bm-node", "stop"], "Stopping BlueMind Node service",
            Service(["service", "bm-node", "stop"]))
    node = ["rsync", "-avH", "--delete", etc + "/bm-node/", "/etc/bm-node/"]
    common = ["rsync", "-avH", "--delete", etc + "/bm/", "/etc/bm/"]
    if legacy:
        execCmd(log, common, "Restoring BlueMind common configuration",
                lambda: copy_tree(etc + "/bm", "/etc/bm", True))
        execCmd(log, node, "Restoring BlueMind Node configuration",
                lambda: copy_tree(etc + "/bm-node", "/etc/bm-node", True))
    else:
        execCmd(log, node, "Restoring BlueMind Node configuration",
                lambda: copy_tree(etc + "/bm-node", "/etc/bm-node", True))
        execCmd(log, common, "Restoring BlueMind common configuration",
                lambda: copy_tree(etc + "/bm", "/etc/bm", True))
    execCmd(log, ["chown", "root:www-data", "/etc/bm/bm-core.tok"],
            "Fix owner of bm-core.tok file")
    execCmd(log, ["chmod", "440", "/etc/bm/bm-core.tok"],
            "Fix permission of bm-core.tok file", fix_token)
    if legacy:
        step_certificate(log)


def step_certificate(log):
    execCmd(log, ["cp", "/etc/bm/certs/bm_cert.pem", "/etc/ssl/certs/bm_cert.pem"],
            "Restoring BlueMind certificate file",
            lambda: copy_file("/etc/bm/certs/bm_cert.pem", "/etc/ssl/certs/bm_cert.pem"))


def steps_core(log, part, etc, legacy):
    if not legacy:
        execCmd(log, ["bmctl", "stop"], "Stopping BlueMind services",
                Service(["bmctl", "stop"]))
    if not BM5:
        execCmd(log, ["rsync", "-avH", "--delete", etc + "/bm-hps/", "/etc/bm-hps/"],
                "Restoring BlueMind HPS configuration",
                lambda: copy_tree(etc + "/bm-hps", "/etc/bm-hps", True))
    execCmd(log, ["rsync", "-avH", etc + "/postfix/", "/etc/postfix/"],
            "Restoring BlueMind Postfix configuration",
            lambda: copy_tree(etc + "/postfix", "/etc/postfix"))
    if legacy:
        return
    src = os.path.join(part, "var/backups/bluemind/work/directory")
    execCmd(log, ["rsync", "-avH", "--delete", src + "/", "/var/spool/bm-hollowed/directory/"],
            "Restoring BlueMind Hollow Directory configuration",
            lambda: copy_tree(src, "/var/spool/bm-hollowed/directory", True))
    step_certificate(log)


def steps_imap(log, part, etc, legacy):
    if not legacy:
        step_certificate(log)
    for name in ("cyrus.conf", "imapd.conf", "cyrus-admins", "cyrus-partitions"):
        src = os.path.join(etc, name)
        execCmd(log, ["cp", src, "/etc/" + name], "Restoring %s file" % name,
                lambda s=src, n=name: copy_file(s, "/etc/" + n))
    lib = os.path.join(part, "var/lib/cyrus")
    spool = os.path.join(part, "var/spool/cyrus")
    execCmd(log, ["rsync", "-avH", "--delete", lib + "/", "/var/lib/cyrus/"],
            "Restoring Cyrus lib files", lambda: copy_tree(lib, "/var/lib/cyrus", True))
    execCmd(log, ["rsync", "-avH", "--delete", spool + "/", "/var/spool/cyrus/"],
            "Restoring Cyrus spool files", lambda: copy_tree(spool, "/var/spool/cyrus", True))
    execCmd(log, ["chown", "-R", "cyrus:mail", "/var/spool/cyrus", "/var/lib/cyrus"],
            "Fixing Cyrus files rights")
    if legacy:
        return
    for f in ("/etc/bm/bm-cyrus-imapd.disabled", "/etc/bm/bm-lmtpd.disabled"):
        if os.path.exists(f):
            execCmd(log, ["rm", "-f", f], "Deleting%s file" % f,
                    lambda p=f: os.remove(p))


def steps_es(log, part, etc, legacy):
    yml = "/usr/share/bm-elasticsearch/config/elasticsearch.yml"
    repo = "/var/spool/bm-elasticsearch/repo"
    execCmd(log, ["cp", etc[:-len("/etc")] + yml, yml], "Restoring ES configuration")
    execCmd(log, ["rm", "-rf", repo], "Cleanup ES repo")
    execCmd(log, ["cp", "-a", os.path.join(part, "var/spool/bm-elasticsearch/repo"),
                  "/var/spool/bm-elasticsearch/"], "Copy backup to ES repo")
    execCmd(log, ["chown", "-R", "elasticsearch:elasticsearch", repo], "chown ES repo")
    if ES_WAIT:
        restart, wait = globals().get("ES_RESTART_STEPS", FALLBACK_ES_STEPS)
        execCmd(log, ["service", "bm-elasticsearch", "restart"], restart)
        execCmd(log, ["bash", "-c", "until curl -s -o /dev/null -w '%{http_code}' "
                      "localhost:9200/_cluster/health | grep -q 200; do sleep 5; done"], wait)
    execCmd(log, ["curl", "-XPOST",
                  "localhost:9200/_snapshot/bm-elasticsearch/snapshot-es/_restore"],
            "Restoring ES index files", lambda: write_marker("es.restored", PART_ID[0]))


def steps_pg(log, part, legacy, data):
    db = "bj-data" if data else "bj"
    work = "pgsql-data" if data else "pgsql"
    suffix = " bj-data" if data else ""
    conf = os.path.join(part, "var/backups/bluemind/work", work, "configuration", PG)
    dump = os.path.join(part, "var/backups/bluemind/work", work, "dump.sql")
    lst = "/tmp/restore-bjdata.list" if data else "/tmp/restore-bj.list"
    telegraf = globals().get("TELEGRAF_STEPS", FALLBACK_TELEGRAF) if ES_WAIT else None
    execCmd(log, ["rsync", "-avH", conf + "/", os.path.join("/etc", "postgresql", PG) + "/"],
            "Restoring PostgreSQL configuration")
    execCmd(log, ["chown", "-R", "postgres:postgres", os.path.join("/etc", "postgresql", PG)],
            "Fixing PostgreSQL configuration rights")
    if telegraf:
        execCmd(log, ["service", "postgresql", "stop"], "Stopping PostGreSQL")
        execCmd(log, ["service", "telegraf", "stop"], telegraf[0])
        execCmd(log, ["service", "postgresql", "start"], "Starting PostGreSQL")
    else:
        execCmd(log, ["service", "postgresql", "restart"], "Restarting PostGreSQL")
    execCmd(log, ["su", "-c", "dropdb %s" % db, "postgres"],
            "Dropping BlueMind database" + suffix)
    execCmd(log, ["su", "-c", "createdb -O bj %s" % db, "postgres"],
            "Creating empty BlueMind database" + suffix)
    marker = lambda: write_marker("%s.restored" % db, PART_ID[0])
    if legacy:
        execCmd(log, ["su", "-c", "psql -f %s bj" % dump, "postgres"],
                "Loading BlueMind database dump", marker)
    else:
        execCmd(log, ["pg_restore", "-l", dump, "-f", lst], "Convert SQL DUMP to SQL File")
        execCmd(log, ["pg_restore", "-d", db, "-L", lst, dump], "Restaure DB %s" % db, marker)
    if not data:
        execCmd(log, ["bash", "-c", "htpasswd -b -c /etc/nginx/sw.htpasswd admin \"$(psql "
                      "-tAc 'select configuration->>sw_password from t_systemconf' bj)\""],
                "Reset BlueMind SW password")
        if telegraf:
            execCmd(log, ["service", "telegraf", "start"], telegraf[1])
    elif telegraf:
        # The real script labels the telegraf restart of bj-data "Stopping".
        execCmd(log, ["service", "telegraf", "start"], telegraf[0])


def steps_hsm(log, part):
    src = os.path.join(part, "var/spool/bm-hsm")
    execCmd(log, ["rsync", "-avH", src + "/", "/var/spool/bm-hsm/"],
            "Restoring BlueMind HSM directory", lambda: copy_tree(src, "/var/spool/bm-hsm"))


def steps_filehosting(log, part, legacy):
    src = os.path.join(part, "var/spool/bm-filehosting")
    if not legacy and not os.path.isdir(src):
        return
    execCmd(log, ["rsync", "-avH", src + "/", "/var/spool/bm-filehosting/"],
            "Restoring BlueMind filehosting directory",
            lambda: copy_tree(src, "/var/spool/bm-filehosting"))


PART_ID = [None]


def restore_part(log, tag, part, etc, legacy):
    if tag == "bm/conf" and not legacy:
        steps_common_conf(log, conf_etc(part), False)
    elif tag == "bm/core":
        steps_core(log, part, etc, legacy)
    elif tag == "mail/imap":
        if not BM5:
            steps_imap(log, part, etc, legacy)
    elif tag == "bm/es":
        steps_es(log, part, etc, legacy)
    elif tag == "bm/pgsql":
        steps_pg(log, part, legacy, False)
    elif tag == "bm/pgsql-data" and not legacy:
        steps_pg(log, part, legacy, True)
    elif tag == "mail/archive":
        if not BM5:
            steps_hsm(log, part)
    elif tag == "filehosting/data":
        steps_filehosting(log, part, legacy)


def restored(part):
    """Record a part the script handles (bm5 mail parts included: it claims them)."""
    RESTORED["tags"].append(part["tag"])
    RESTORED["partIds"].append(part["id"])


def write_state(gen, ip):
    d = os.path.dirname(STATE_FILE)
    if d and not os.path.isdir(d):
        os.makedirs(d)
    state = {
        "variant": VARIANT,
        "generationId": gen.get("id"),
        "protectionTime": gen["protectionTime"],
        "hostIp": ip,
        "tags": RESTORED["tags"],
        "partIds": RESTORED["partIds"],
        "finishedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    f = open(STATE_FILE + ".tmp", "w")
    f.write(json.dumps(state, sort_keys=True))
    f.close()
    os.rename(STATE_FILE + ".tmp", STATE_FILE)


def main():
    global LOG
    if PY3_CRASH and LEGACY:
        # Python 3 refuses the legacy file at compile time: nothing runs, no log.
        fake_py3_traceback()
    if LEGACY:
        logname = sys.argv[0] + ".log"
    else:
        logname = globals().get("LOG_PREFIX", time.strftime("%d-%m-%Y-%H-%M-%S")) + \
            sys.argv[0] + ".log"
    LOG = open(logname, "w")
    LOG.write("Starting PRA\n")
    LOG.flush()

    if not os.path.isdir(BM_BACKUP_DIR):
        sys.stderr.write("%s must exists!\n" % BM_BACKUP_DIR)
        sys.exit(1)

    ip = getHostIp()
    if ip is None:
        sys.stderr.write("No BlueMind backup data found for this host in %s !\n"
                         % BM_BACKUP_RSYNC_ROOT)
        sys.exit(0)
    hostroot = os.path.join(BM_BACKUP_RSYNC_ROOT, ip)

    gen = choose_generation(read_generations())
    sanity(gen)

    core_etc = None
    if LEGACY:
        cores = glob.glob(os.path.join(BM_BACKUP_RSYNC_ROOT, "*", "bm", "core", "*"))
        core_etc = os.path.join(cores[0], "var/backups/bluemind/conf/etc")
        steps_common_conf(LOG, core_etc, True)
    else:
        for p in gen["parts"]:
            if p["tag"] == "bm/conf" and os.path.isdir(os.path.join(hostroot, "bm/conf",
                                                                     str(p["id"]))):
                core_etc = conf_etc(os.path.join(hostroot, "bm/conf", str(p["id"])))
        if core_etc is None:
            core_etc = "/nonexistent/etc"

    for p in gen["parts"]:
        tag = p["tag"]
        path = os.path.join(hostroot, tag, str(p["id"]))
        if not os.path.isdir(path):
            if LEGACY:
                sys.stdout.write(globals().get("NOT_TAGGED_FMT", FALLBACK_NOT_TAGGED) % tag)
            continue
        PART_ID[0] = p["id"]
        if LEGACY:
            if tag in ("mail/imap", "bm/es", "bm/core", "bm/pgsql", "mail/archive",
                       "filehosting/data"):
                restored(p)
                restore_part(LOG, tag, path, core_etc, True)
            else:
                sys.stdout.write(path + "\n")
            continue
        sys.stdout.write("This server is tagged as %s\n" % tag)
        if tag in HEADERS:
            restored(p)
            sys.stdout.write("\n**** RESTORE %s ****\n" % HEADERS[tag])
            restore_part(LOG, tag, path, core_etc, False)

    if not LEGACY:
        sys.stdout.write("\n**** STARTING BLUEMIND SERVICES ****\n")
    execCmd(LOG, ["service", "bm-node", "start"], "Starting BlueMind Node service",
            Service(["service", "bm-node", "start"]))
    execCmd(LOG, ["bmctl", "start"], "Starting BlueMind services",
            Service(["bmctl", "start"]))
    LOG.close()
    write_state(gen, ip)
    sys.exit(0)


main()
