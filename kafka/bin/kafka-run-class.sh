#!/usr/bin/env bash
# Runs a Java main class of the pinned Apache Kafka release with its jars on the class path, as
# the tarball's bin/kafka-run-class.sh does. The jars come from scripts/kafka-fetch (fetched once,
# then cached). Environment, as in the tarball: KAFKA_HEAP_OPTS, KAFKA_JVM_PERFORMANCE_OPTS,
# KAFKA_LOG4J_OPTS, KAFKA_OPTS.
set -euo pipefail
if [ $# -lt 1 ]; then
  echo "usage: $(basename "$0") MAIN_CLASS [ARGS…]" >&2
  exit 2
fi
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$(dirname "$here")")"
cache="$("$root/scripts/kafka-fetch")"
# Command-line tools: a small heap and the quick JIT tier start in about a second.
heap="${KAFKA_HEAP_OPTS:--Xmx512m}"
perf="${KAFKA_JVM_PERFORMANCE_OPTS:--XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true}"
log4j="${KAFKA_LOG4J_OPTS:--Dlog4j2.configurationFile=$root/kafka/config/tools-log4j2.properties}"
# shellcheck disable=SC2086 # the *_OPTS variables are word lists, as in Kafka's own scripts
exec java $heap $perf $log4j ${KAFKA_OPTS:-} -cp "$cache/libs/*" "$@"
