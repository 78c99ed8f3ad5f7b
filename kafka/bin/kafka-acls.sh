#!/usr/bin/env bash
# Apache Kafka's kafka-acls.sh: add, list and remove the broker's ACLs.
exec "$(dirname "${BASH_SOURCE[0]}")/kafka-run-class.sh" org.apache.kafka.tools.AclCommand "$@"
