#!/usr/bin/env bash
# Apache Kafka's kafka-configs.sh: dynamic configs and SCRAM credentials.
exec "$(dirname "${BASH_SOURCE[0]}")/kafka-run-class.sh" org.apache.kafka.tools.ConfigCommand "$@"
