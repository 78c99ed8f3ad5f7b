#!/usr/bin/env bash
# Apache Kafka's kafka-consumer-groups.sh.
exec "$(dirname "${BASH_SOURCE[0]}")/kafka-run-class.sh" org.apache.kafka.tools.consumer.group.ConsumerGroupCommand "$@"
