#!/usr/bin/env bash
# Apache Kafka's kafka-console-consumer.sh.
exec "$(dirname "${BASH_SOURCE[0]}")/kafka-run-class.sh" org.apache.kafka.tools.consumer.ConsoleConsumer "$@"
