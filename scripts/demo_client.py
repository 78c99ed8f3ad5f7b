"""Create a topic, produce to it and list topics through kafka-mtls-proxy with a client certificate.

Topics are listed from cluster metadata (what `kafka-topics.sh --list` shows): kafka-python 2.x's
admin `list_topics` cannot parse tansu's authorized-operations field, with or without the proxy.
"""
import argparse
import sys

from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--bootstrap", default="localhost:9092")
    p.add_argument("--certs", default="certs")
    p.add_argument("--client", default="acme-client")
    a = p.parse_args()
    ssl = dict(
        security_protocol="SSL",
        ssl_cafile=f"{a.certs}/server-ca.pem",
        ssl_certfile=f"{a.certs}/{a.client}.pem",
        ssl_keyfile=f"{a.certs}/{a.client}.key",
    )
    admin = KafkaAdminClient(bootstrap_servers=a.bootstrap, client_id="quickstart", **ssl)
    try:
        admin.create_topics([NewTopic("quickstart", num_partitions=1, replication_factor=1)])
        print("created topic quickstart")
    except TopicAlreadyExistsError:
        pass
    producer = KafkaProducer(bootstrap_servers=a.bootstrap, **ssl)
    producer.send("quickstart", b"hello through the proxy").get(timeout=30)
    producer.close()
    print("produced 1 message to quickstart")
    admin.close()
    consumer = KafkaConsumer(bootstrap_servers=a.bootstrap, **ssl)
    print("topics:", ", ".join(sorted(consumer.topics())))
    consumer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
