#!/usr/bin/env bash
# Apache Kafka's kafka-storage.sh: format a KRaft node's log directories.
exec "$(dirname "${BASH_SOURCE[0]}")/kafka-run-class.sh" kafka.tools.StorageTool "$@"
