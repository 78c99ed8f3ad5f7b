#!/usr/bin/env bash
# Apache Kafka's kafka-broker-api-versions.sh.
exec "$(dirname "${BASH_SOURCE[0]}")/kafka-run-class.sh" org.apache.kafka.tools.BrokerApiVersionsCommand "$@"
