#!/bin/sh
# demo.sh — `make demo`: train a small model under ckmon and show what it recorded.
#
# Runs examples/train.py (an ordinary training loop with no ckmon in it) under
# `build/ckmon run` in a scratch directory, never the repository, then prints one line per
# checkpoint record (path, format, epoch, loss, learning rate) and each tensor's statistics.
# Usage: examples/demo.sh [DIR]   (default: a new directory under $TMPDIR or /tmp)
# Exits non-zero when training fails or no record was written.
set -eu

repo=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-/usr/bin/python3}
demo=${1:-$(mktemp -d "${TMPDIR:-/tmp}/ckmon-demo.XXXXXX")}
mkdir -p "$demo"
demo=$(cd "$demo" && pwd)
log="$demo/ckmon.jsonl"
rm -rf "$log" "$log.state" "$demo/checkpoints"  # the state: a new run compares with nothing

echo "== training in $demo under ckmon"
(cd "$demo" && "$repo/build/ckmon" run -o "$log" -- "$python" "$repo/examples/train.py")

if [ ! -s "$log" ]; then
    echo "ckmon demo: no records were written to $log" >&2
    exit 1
fi

echo
echo "== what ckmon recorded"
"$python" - "$log" "$demo" <<'SUMMARY'
import json, os, sys

log, demo = sys.argv[1], sys.argv[2]


def last_logged(values, field):
    """A trainer_state.json keeps its numbers in log_history.N.FIELD: the latest one."""
    entries = sorted((int(k.split(".")[1]), v) for k, v in values.items()
                     if k.startswith("log_history.") and k.endswith("." + field))
    return entries[-1][1] if entries else None


def show(x):
    if x is None:
        return "-"
    return f"{x:.6g}" if isinstance(x, float) else str(x)


print(f"{'path':44} {'format':7} {'ok':3} {'epoch':>6} {'loss':>10} {'lr':>10}")
with open(log) as f:
    for line in f:
        r = json.loads(line)
        if r["event"] == "alert":
            print(f"    ALERT {r['rule']} ({r['severity']}): {r['message']}")
            continue
        v = r["values"]
        path = os.path.relpath(r["path"], demo)
        loss = v.get("loss", last_logged(v, "loss"))
        lr = v.get("lr", last_logged(v, "learning_rate"))
        ok = "yes" if r["complete"] else "NO"
        print(f"{path:44} {r['format']:7} {ok:3} {show(v.get('epoch')):>6} {show(loss):>10} "
              f"{show(lr):>10}")
        if "written_as" in r:
            print(f"    written as {os.path.relpath(r['written_as'], demo)}, then renamed")
        for t in r["tensors"]:
            shape = "x".join(map(str, t["shape"]))
            print(f"    tensor {t['name']:32} {t['dtype']:8} [{shape}] min {show(t['min'])} "
                  f"max {show(t['max'])} mean {show(t['mean'])} std {show(t['std'])}")
        for e in r.get("errors", []):
            print(f"    error: {e}")
SUMMARY

echo
echo "== the full records: $log"
echo "   (try: jq -c '{path, epoch: .values.epoch, loss: .values.loss}' $log)"
