#!/usr/bin/env bash
# Apache Kafka's kafka-server-start.sh: runs a broker and/or controller from a properties file.
# A server's heap, JIT and log4j defaults differ from the tools' (KAFKA_* variables still win).
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ $# -lt 1 ]; then
  echo "usage: $(basename "$0") server.properties [--override key=value]…" >&2
  exit 2
fi
export KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms512m -Xmx512m}"
export KAFKA_JVM_PERFORMANCE_OPTS="${KAFKA_JVM_PERFORMANCE_OPTS:--XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true}"
export KAFKA_LOG4J_OPTS="${KAFKA_LOG4J_OPTS:--Dlog4j2.configurationFile=$(dirname "$here")/config/server-log4j2.properties}"
exec "$here/kafka-run-class.sh" kafka.Kafka "$@"
