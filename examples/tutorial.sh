#!/usr/bin/env bash
# Runs the Kubernetes tutorial "Coarse Parallel Processing Using a Work Queue" end to end on this
# machine, with this project's tools in place of Debian's amqp-tools and a local RabbitMQ in place
# of the rabbitmq-service Pod:
#   1. the "test the message queue service" step: declare foo, publish Hello, consume it with cat;
#   2. fill job1 with the 8 fruit names using the tutorial's loop;
#   3. the Job: 8 worker runs ("completions: 8"), at most 2 at a time ("parallelism: 2"), each
#      running exactly the container's command, amqp-consume --url=$BROKER_URL -q job1 -c 1 <worker>.
# Environment: BROKER_URL (default amqp://guest:guest@localhost:5672), WORKER_SLEEP (default 1),
# AMQP_TOOLS_BIN (a directory holding the five tools; default: build them with cargo --release).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")

if [ -z "${BROKER_URL:-}" ]; then
    # The local broker stands in for the tutorial's rabbitmq-service.
    "$root/scripts/ensure-deps"
    export BROKER_URL=amqp://guest:guest@localhost:5672
fi
export WORKER_SLEEP=${WORKER_SLEEP:-1}
if [ -z "${AMQP_TOOLS_BIN:-}" ]; then
    echo "== building the tools (cargo build --release)"
    (cd "$root" && cargo build --release --quiet --bins)
    AMQP_TOOLS_BIN="$root/target/release"
fi
export PATH="$AMQP_TOOLS_BIN:$PATH"
worker="$here/worker.sh"
for tool in amqp-declare-queue amqp-publish amqp-consume amqp-delete-queue; do
    [ "$(command -v "$tool")" = "$AMQP_TOOLS_BIN/$tool" ] || {
        echo "tutorial.sh: $tool is not in $AMQP_TOOLS_BIN" >&2
        exit 1
    }
done
echo "== broker: $(printf '%s' "$BROKER_URL" | sed 's|://\([^:@/]*\):[^@/]*@|://\1:****@|')"

# Start from a clean state, as a fresh RabbitMQ would be.
amqp-delete-queue --url="$BROKER_URL" -q foo >/dev/null
amqp-delete-queue --url="$BROKER_URL" -q job1 >/dev/null

echo "== testing the message queue service"
echo "\$ amqp-declare-queue --url=\$BROKER_URL -q foo -d"
amqp-declare-queue --url="$BROKER_URL" -q foo -d
echo "\$ amqp-publish --url=\$BROKER_URL -r foo -p -b Hello"
amqp-publish --url="$BROKER_URL" -r foo -p -b Hello
echo "\$ amqp-consume --url=\$BROKER_URL -q foo -c 1 cat && echo 1>&2"
amqp-consume --url="$BROKER_URL" -q foo -c 1 cat && echo 1>&2
amqp-delete-queue --url="$BROKER_URL" -q foo >/dev/null

echo "== filling the queue with tasks"
echo "\$ amqp-declare-queue --url=\$BROKER_URL -q job1 -d"
amqp-declare-queue --url="$BROKER_URL" -q job1 -d
for f in apple banana cherry date fig grape lemon melon
do
  amqp-publish --url="$BROKER_URL" -r job1 -p -b $f
done
echo "published 8 items"

echo "== running the Job: 8 completions, parallelism 2"
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
failed=0
run_pod() {
    # One pod: the container's command, verbatim.
    amqp-consume --url="$BROKER_URL" -q job1 -c 1 "$worker" >"$logs/pod-$1.out" 2>&1
    echo $? >"$logs/pod-$1.rc"
}
for pair in "1 2" "3 4" "5 6" "7 8"; do
    for pod in $pair; do run_pod "$pod" & done
    wait
done
for pod in 1 2 3 4 5 6 7 8; do
    rc=$(cat "$logs/pod-$pod.rc")
    [ "$rc" = 0 ] || failed=1
    printf 'pod %s (exit %s): %s\n' "$pod" "$rc" "$(tr '\n' ' ' <"$logs/pod-$pod.out")"
done

echo "== result"
left=$(amqp-delete-queue --url="$BROKER_URL" -q job1)
echo "messages left in job1: $left"
processed=$(cat "$logs"/pod-*.out | grep -c '^Processing ' || true)
echo "items processed: $processed"
if [ "$failed" != 0 ] || [ "$left" != 0 ] || [ "$processed" != 8 ]; then
    echo "tutorial FAILED" >&2
    exit 1
fi
echo "tutorial OK"
