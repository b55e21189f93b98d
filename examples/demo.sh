#!/bin/sh
# demo.sh — `make demo`: train a small model under ckmon and show what it recorded.
#
# Runs examples/train.py (an ordinary training loop with no ckmon in it) under
# `build/ckmon run` in a scratch directory, never the repository, then shows the log with
# `ckmon tail`: one line per checkpoint (path, format, epoch, loss, learning rate) and each
# tensor's statistics; `ckmon report` writes the run's charts to report.html beside the log.
# Usage: examples/demo.sh [DIR]   (default: a new directory under $TMPDIR or /tmp)
#        CKMON=path/to/ckmon examples/demo.sh   (default build/ckmon: another build's, such
#        as the sanitized one the tests use)
# Exits non-zero when training fails or no record was written.
set -eu

repo=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-/usr/bin/python3}
ckmon=${CKMON:-$repo/build/ckmon}
demo=${1:-$(mktemp -d "${TMPDIR:-/tmp}/ckmon-demo.XXXXXX")}
mkdir -p "$demo"
demo=$(cd "$demo" && pwd)
log="$demo/ckmon.jsonl"
rm -rf "$log" "$log.state" "$demo/checkpoints"  # the state: a new run compares with nothing

echo "== training in $demo under ckmon"
(cd "$demo" && "$ckmon" run -o "$log" -- "$python" "$repo/examples/train.py")

if [ ! -s "$log" ]; then
    echo "ckmon demo: no records were written to $log" >&2
    exit 1
fi

echo
echo "== what ckmon recorded"
(cd "$demo" && "$ckmon" tail --log "$log")

echo
"$ckmon" report --log "$log" -o "$demo/report.html"
echo "== a page with charts of the run: $demo/report.html"

echo
echo "== the full records: $log"
echo "   (try: jq -c '{path, epoch: .values.epoch, loss: .values.loss}' $log)"
