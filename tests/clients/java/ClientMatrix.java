// The Java side of the client matrix: one Kafka client operation per run, through any bootstrap
// address with any Kafka client properties file (PKCS#12 or JKS keystores), answered as ONE JSON
// object on stdout so that tests in any language can drive it. Logs go to stderr (log4j2).
//
//   ClientMatrix --bootstrap HOST:PORT --config client.properties COMMAND [OPTIONS]
//     list
//     create TOPIC [--partitions N] [--replication-factor N]
//     produce TOPIC --count N [--idempotent] [--transactional-id ID [--abort]] [--prefix STR]
//     consume TOPIC --group G --count N [--timeout-ms MS] [--read-committed]
//             [--group-protocol classic|consumer]     (consumer: KIP-848, GA in Kafka 4.0)
//     refused
//
// Exit status: 0 success; 3 refused (authentication failed, or the broker denied the operation:
// `{"refused": true, "exception": "...", ...}`); 1 any other error (`{"error", "type"}`).
// Only kafka-clients APIs (4.x) and the JDK are used.

import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.Set;
import java.util.StringJoiner;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.CloseOptions;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.AuthenticationException;
import org.apache.kafka.common.errors.AuthorizationException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public final class ClientMatrix {
    /** Every single blocking call is bounded by this (the clients' default.api.timeout.ms). */
    static final long OP_TIMEOUT_MS = 30_000;
    /** The whole run, closes included: a hung client must never hang the test suite. */
    static final long WATCHDOG_MS = 120_000;

    /** Failure that carries its own exit status and JSON answer. */
    static final class Exit extends RuntimeException {
        private static final long serialVersionUID = 1L;
        final int status;
        final transient Map<String, Object> answer;

        Exit(int status, Map<String, Object> answer) {
            super(String.valueOf(answer.get("error")));
            this.status = status;
            this.answer = answer;
        }
    }

    public static void main(String[] argv) {
        startWatchdog();
        int status;
        Map<String, Object> answer;
        try {
            answer = run(new Args(argv));
            status = 0;
        } catch (Exit e) {
            status = e.status;
            answer = e.answer;
        } catch (Throwable t) {
            Throwable root = unwrap(t);
            AuthenticationException authn = find(root, AuthenticationException.class);
            AuthorizationException authz = find(root, AuthorizationException.class);
            if (authn != null || authz != null) {
                status = 3;
                answer = refusal(authn != null ? authn : authz, -1);
            } else {
                status = 1;
                answer = error(root);
            }
        }
        System.out.println(Json.write(answer));
        System.out.flush();
        // Client threads (a producer's sender, an admin's network thread) must not keep us alive.
        Runtime.getRuntime().halt(status);
    }

    static Map<String, Object> run(Args args) throws Exception {
        Properties props = clientProperties(args.required("--bootstrap"), args.required("--config"));
        String command = args.positional(0, "command");
        switch (command) {
            case "list": return list(props);
            case "create": return create(props, args);
            case "produce": return produce(props, args);
            case "consume": return consume(props, args);
            case "refused": return refused(props);
            default: throw new IllegalArgumentException("unknown command: " + command);
        }
    }

    static Properties clientProperties(String bootstrap, String file) throws IOException {
        Properties props = new Properties();
        try (InputStream in = new FileInputStream(file)) {
            props.load(in);
        }
        props.put("bootstrap.servers", bootstrap);
        props.put("request.timeout.ms", "15000");
        props.put("default.api.timeout.ms", String.valueOf(OP_TIMEOUT_MS));
        props.putIfAbsent("client.id", "client-matrix-java");
        return props;
    }

    // ---------------------------------------------------------------------------------- admin

    static Map<String, Object> list(Properties props) throws Exception {
        try (Admin admin = Admin.create(props)) {
            DescribeClusterResult cluster = admin.describeCluster();
            List<Object> brokers = new ArrayList<>();
            for (Node n : get(cluster.nodes())) {
                brokers.add(List.of(n.id(), n.host(), n.port()));
            }
            Map<String, Object> out = new LinkedHashMap<>();
            out.put("topics", new ArrayList<>(new TreeSet<>(get(admin.listTopics().names()))));
            out.put("brokers", brokers);
            out.put("cluster_id", get(cluster.clusterId()));
            return out;
        }
    }

    static Map<String, Object> create(Properties props, Args args) throws Exception {
        String topic = args.positional(1, "TOPIC");
        Optional<Integer> partitions = args.optionalInt("--partitions");
        Optional<Short> replication = args.optionalInt("--replication-factor").map(Integer::shortValue);
        try (Admin admin = Admin.create(props)) {
            get(admin.createTopics(List.of(new NewTopic(topic, partitions, replication))).all());
        }
        return Map.of("created", topic);
    }

    /** A describeCluster that must fail with an authentication error, and how fast it did. */
    static Map<String, Object> refused(Properties props) {
        long start = System.nanoTime();
        try (Admin admin = Admin.create(props)) {
            Collection<Node> nodes = get(admin.describeCluster().nodes());
            throw new Exit(1, Map.of("error", "admitted, but a refusal was expected; brokers: " + nodes,
                    "type", "UnexpectedSuccess"));
        } catch (Exit e) {
            throw e;
        } catch (Exception e) {
            long elapsed = (System.nanoTime() - start) / 1_000_000;
            AuthenticationException authn = find(unwrap(e), AuthenticationException.class);
            if (authn == null) {
                Map<String, Object> answer = error(unwrap(e));
                answer.put("elapsed_ms", elapsed);
                throw new Exit(1, answer);
            }
            throw new Exit(3, refusal(authn, elapsed));
        }
    }

    // ------------------------------------------------------------------------------- producer

    static Map<String, Object> produce(Properties props, Args args) throws Exception {
        String topic = args.positional(1, "TOPIC");
        int count = args.requiredInt("--count");
        String prefix = args.optional("--prefix").orElse("value");
        Optional<String> txId = args.optional("--transactional-id");
        boolean abort = args.flag("--abort");
        if (abort && txId.isEmpty()) {
            throw new IllegalArgumentException("--abort needs --transactional-id");
        }
        props.put("acks", "all");
        // Kafka 3+ producers are idempotent by default: say it either way so the flag matters.
        props.put("enable.idempotence", String.valueOf(args.flag("--idempotent") || txId.isPresent()));
        txId.ifPresent(id -> props.put("transactional.id", id));
        props.put("max.block.ms", String.valueOf(OP_TIMEOUT_MS));
        props.put("delivery.timeout.ms", String.valueOf(OP_TIMEOUT_MS));
        props.put("linger.ms", "0");
        List<Long> offsets = new ArrayList<>();
        try (KafkaProducer<String, String> producer =
                     new KafkaProducer<>(props, new StringSerializer(), new StringSerializer())) {
            if (txId.isPresent()) {
                producer.initTransactions();
                producer.beginTransaction();
            }
            List<Future<RecordMetadata>> sent = new ArrayList<>();
            for (int i = 0; i < count; i++) {
                sent.add(producer.send(new ProducerRecord<>(topic, prefix + "-" + i)));
            }
            producer.flush();
            for (Future<RecordMetadata> f : sent) {
                offsets.add(f.get(OP_TIMEOUT_MS, TimeUnit.MILLISECONDS).offset());
            }
            if (abort) {
                producer.abortTransaction();
            } else if (txId.isPresent()) {
                producer.commitTransaction();
            }
            producer.close(Duration.ofMillis(OP_TIMEOUT_MS));
        }
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("offsets", offsets);
        if (txId.isPresent()) {
            out.put("transaction", abort ? "aborted" : "committed");
        }
        return out;
    }

    // ------------------------------------------------------------------------------- consumer

    static Map<String, Object> consume(Properties props, Args args) throws Exception {
        String topic = args.positional(1, "TOPIC");
        int count = args.requiredInt("--count");
        long timeoutMs = args.optionalInt("--timeout-ms").map(Integer::longValue).orElse(OP_TIMEOUT_MS);
        props.put("group.id", args.required("--group"));
        props.put("auto.offset.reset", "earliest");
        props.put("enable.auto.commit", "false");
        args.optional("--group-protocol").ifPresent(p -> props.put("group.protocol", p));
        props.put("isolation.level", args.flag("--read-committed") ? "read_committed" : "read_uncommitted");
        List<String> values = new ArrayList<>();
        Map<String, Object> committed = new TreeMap<>();
        try (KafkaConsumer<String, String> consumer =
                     new KafkaConsumer<>(props, new StringDeserializer(), new StringDeserializer())) {
            consumer.subscribe(List.of(topic));
            Set<TopicPartition> seen = new HashSet<>();
            long deadline = System.nanoTime() + timeoutMs * 1_000_000;
            while (values.size() < count && System.nanoTime() < deadline) {
                for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(200))) {
                    values.add(r.value());
                    seen.add(new TopicPartition(r.topic(), r.partition()));
                }
            }
            if (values.size() < count) {
                Map<String, Object> answer = new LinkedHashMap<>();
                answer.put("error", "got " + values.size() + " of " + count + " records within "
                        + timeoutMs + " ms");
                answer.put("type", "TimeoutException");
                answer.put("values", values);
                throw new Exit(1, answer);
            }
            consumer.commitSync(Duration.ofMillis(OP_TIMEOUT_MS));
            // Read back what the group coordinator stored, not what we believe we committed.
            seen.addAll(consumer.assignment());
            Map<TopicPartition, OffsetAndMetadata> stored =
                    consumer.committed(seen, Duration.ofMillis(OP_TIMEOUT_MS));
            for (Map.Entry<TopicPartition, OffsetAndMetadata> e : stored.entrySet()) {
                committed.put(String.valueOf(e.getKey().partition()),
                        e.getValue() == null ? null : e.getValue().offset());
            }
            consumer.close(CloseOptions.timeout(Duration.ofMillis(OP_TIMEOUT_MS)));
        }
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("values", values);
        out.put("committed", committed);
        return out;
    }

    // -------------------------------------------------------------------------------- helpers

    static <T> T get(org.apache.kafka.common.KafkaFuture<T> future) throws Exception {
        return future.get(OP_TIMEOUT_MS, TimeUnit.MILLISECONDS);
    }

    static Throwable unwrap(Throwable t) {
        while (t instanceof ExecutionException && t.getCause() != null) {
            t = t.getCause();
        }
        return t;
    }

    static <T extends Throwable> T find(Throwable t, Class<T> type) {
        for (int depth = 0; t != null && depth < 10; t = t.getCause(), depth++) {
            if (type.isInstance(t)) {
                return type.cast(t);
            }
        }
        return null;
    }

    static Map<String, Object> refusal(Throwable t, long elapsedMs) {
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("refused", true);
        out.put("exception", t.getClass().getSimpleName() + ": " + t.getMessage());
        if (t.getCause() != null) {  // e.g. SSLHandshakeException: Received fatal alert: ...
            out.put("cause", t.getCause().getClass().getSimpleName() + ": " + t.getCause().getMessage());
        }
        if (elapsedMs >= 0) {
            out.put("elapsed_ms", elapsedMs);
        }
        return out;
    }

    static Map<String, Object> error(Throwable t) {
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("error", String.valueOf(t.getMessage()));
        out.put("type", t.getClass().getSimpleName());
        return out;
    }

    static void startWatchdog() {
        Thread dog = new Thread(() -> {
            try {
                Thread.sleep(WATCHDOG_MS);
            } catch (InterruptedException e) {
                return;
            }
            System.out.println(Json.write(Map.of("error", "still running after " + WATCHDOG_MS + " ms",
                    "type", "Watchdog")));
            System.out.flush();
            Runtime.getRuntime().halt(1);
        }, "client-matrix-watchdog");
        dog.setDaemon(true);
        dog.start();
    }

    /** `--name value` options, `--flag`s and positional words, in any order after the command. */
    static final class Args {
        final Map<String, String> options = new LinkedHashMap<>();
        final Set<String> flags = new HashSet<>();
        final List<String> positional = new ArrayList<>();
        static final Set<String> FLAGS = Set.of("--idempotent", "--read-committed", "--abort");

        Args(String[] argv) {
            for (int i = 0; i < argv.length; i++) {
                String a = argv[i];
                if (FLAGS.contains(a)) {
                    flags.add(a);
                } else if (a.startsWith("--")) {
                    if (i + 1 >= argv.length) {
                        throw new IllegalArgumentException(a + " needs a value");
                    }
                    options.put(a, argv[++i]);
                } else {
                    positional.add(a);
                }
            }
        }

        String required(String name) {
            return optional(name).orElseThrow(() -> new IllegalArgumentException("missing " + name));
        }

        Optional<String> optional(String name) {
            return Optional.ofNullable(options.get(name));
        }

        int requiredInt(String name) {
            return Integer.parseInt(required(name));
        }

        Optional<Integer> optionalInt(String name) {
            return optional(name).map(Integer::parseInt);
        }

        boolean flag(String name) {
            return flags.contains(name);
        }

        String positional(int index, String what) {
            if (index >= positional.size()) {
                throw new IllegalArgumentException("missing " + what);
            }
            return positional.get(index);
        }
    }

    /** Just enough JSON for maps, lists, strings, numbers, booleans and null. */
    static final class Json {
        static String write(Object v) {
            if (v == null || v instanceof Number || v instanceof Boolean) {
                return String.valueOf(v);
            } else if (v instanceof Map<?, ?> m) {
                StringJoiner out = new StringJoiner(",", "{", "}");
                m.forEach((k, val) -> out.add(string(String.valueOf(k)) + ":" + write(val)));
                return out.toString();
            } else if (v instanceof Collection<?> c) {
                StringJoiner out = new StringJoiner(",", "[", "]");
                c.forEach(o -> out.add(write(o)));
                return out.toString();
            }
            return string(v.toString());
        }

        static String string(String s) {
            StringBuilder sb = new StringBuilder("\"");
            for (char c : s.toCharArray()) {
                if (c == '"' || c == '\\') {
                    sb.append('\\').append(c);
                } else if (c < 0x20) {  // control characters, newlines included
                    sb.append(String.format("\\u%04x", (int) c));
                } else {
                    sb.append(c);
                }
            }
            return sb.append('"').toString();
        }
    }
}
