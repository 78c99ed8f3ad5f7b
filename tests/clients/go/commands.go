package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func cmdList(ctx context.Context, o options) (result, error) {
	cl, err := newClient(o)
	if err != nil {
		return result{}, err
	}
	defer cl.Close()
	m, err := kadm.NewClient(cl).Metadata(ctx)
	if err != nil {
		return result{}, fmt.Errorf("metadata: %w", err)
	}
	if err := m.Topics.Error(); err != nil {
		return result{}, fmt.Errorf("metadata: %w", err)
	}
	m.Topics.FilterInternal()
	brokers := make([][]any, 0, len(m.Brokers))
	for _, b := range m.Brokers {
		brokers = append(brokers, []any{b.NodeID, b.Host, b.Port})
	}
	return ok(map[string]any{
		"topics":     m.Topics.Names(), // sorted
		"brokers":    brokers,          // sorted by node id
		"cluster_id": m.Cluster,
		"controller": m.Controller,
	}), nil
}

func cmdCreate(ctx context.Context, o options, args []string) (result, error) {
	fs := flag.NewFlagSet("create", flag.ContinueOnError)
	partitions := fs.Int("partitions", 1, "number of partitions")
	replication := fs.Int("replication-factor", -1, "replication factor (-1: the broker's default)")
	topic, err := parseCommand("create", fs, args)
	if err != nil {
		return result{}, err
	}
	cl, err := newClient(o)
	if err != nil {
		return result{}, err
	}
	defer cl.Close()
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, int32(*partitions), int16(*replication), nil, topic)
	if err != nil {
		return result{}, fmt.Errorf("create topic %s: %w", topic, err)
	}
	return ok(map[string]any{"created": resp.Topic, "partitions": resp.NumPartitions}), nil
}

func cmdProduce(ctx context.Context, o options, args []string) (result, error) {
	fs := flag.NewFlagSet("produce", flag.ContinueOnError)
	count := fs.Int("count", 1, "number of records")
	prefix := fs.String("prefix", "msg", "values are PREFIX-0 … PREFIX-(N-1)")
	topic, err := parseCommand("produce", fs, args)
	if err != nil {
		return result{}, err
	}
	// acks=all and idempotence are franz-go's defaults; spelled out because the test relies on them.
	cl, err := newClient(o, kgo.RequiredAcks(kgo.AllISRAcks()), kgo.DefaultProduceTopic(topic))
	if err != nil {
		return result{}, err
	}
	defer cl.Close()
	records := make([]*kgo.Record, *count)
	for i := range records {
		records[i] = kgo.StringRecord(fmt.Sprintf("%s-%d", *prefix, i))
	}
	results := cl.ProduceSync(ctx, records...)
	if err := results.FirstErr(); err != nil {
		return result{}, fmt.Errorf("produce to %s: %w", topic, err)
	}
	offsets := make([]int64, len(results))
	partitions := make([]int32, len(results))
	for i, r := range results {
		offsets[i], partitions[i] = r.Record.Offset, r.Record.Partition
	}
	return ok(map[string]any{"offsets": offsets, "partitions": partitions}), nil
}

func cmdConsume(ctx context.Context, o options, args []string) (result, error) {
	fs := flag.NewFlagSet("consume", flag.ContinueOnError)
	group := fs.String("group", "", "consumer group (required)")
	count := fs.Int("count", 1, "number of records to read")
	timeoutMs := fs.Int("timeout-ms", 20000, "how long to poll for the records")
	protocol := fs.String("group-protocol", "classic", "classic (JoinGroup/SyncGroup) or consumer (KIP-848)")
	topic, err := parseCommand("consume", fs, args)
	if err != nil {
		return result{}, err
	}
	if *group == "" {
		return result{}, usageError{errors.New("consume: --group is required")}
	}
	opts := []kgo.Opt{
		kgo.ConsumerGroup(*group),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(), // the test checks what this program commits, nothing else
		kgo.FetchMaxWait(500 * time.Millisecond),
	}
	switch *protocol {
	case "classic":
	case "consumer":
		// Needs the broker's ConsumerGroupHeartbeat v1+ (Kafka 4); franz-go falls back to the
		// classic protocol otherwise.
		opts = append(opts, kgo.ServerSideBalancer())
	default:
		return result{}, usageError{fmt.Errorf("consume: --group-protocol: classic or consumer, not %q", *protocol)}
	}
	cl, err := newClient(o, opts...)
	if err != nil {
		return result{}, err
	}
	defer cl.Close() // leaves the group

	values, pollErr := poll(ctx, cl, *count, time.Duration(*timeoutMs)*time.Millisecond)
	partial := map[string]any{"values": values}
	if pollErr != nil {
		return result{body: partial}, pollErr
	}
	if err := cl.CommitUncommittedOffsets(ctx); err != nil {
		return result{body: partial}, fmt.Errorf("commit: %w", err)
	}
	offsets, err := kadm.NewClient(cl).FetchOffsets(ctx, *group)
	if err == nil {
		err = offsets.Error()
	}
	if err != nil {
		return result{body: partial}, fmt.Errorf("fetch committed offsets of %s: %w", *group, err)
	}
	committed := map[string]int64{}
	for partition, off := range offsets[topic] {
		committed[strconv.Itoa(int(partition))] = off.At
	}
	return ok(map[string]any{"values": values, "committed": committed}), nil
}

// poll reads records until it has count of them or timeout passes. A fetch error that is a
// refusal ends it at once; franz-go retries the others itself, so they are only logged.
func poll(ctx context.Context, cl *kgo.Client, count int, timeout time.Duration) ([]string, error) {
	pollCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	values := []string{}
	var lastErr error
	for len(values) < count {
		fetches := cl.PollRecords(pollCtx, count-len(values))
		for _, fe := range fetches.Errors() {
			if errors.Is(fe.Err, context.DeadlineExceeded) || errors.Is(fe.Err, context.Canceled) {
				continue
			}
			fmt.Fprintf(os.Stderr, "fetch error on %s[%d]: %v\n", fe.Topic, fe.Partition, fe.Err)
			lastErr = fe.Err
			if isRefusal(fe.Err) {
				return values, fe.Err
			}
		}
		fetches.EachRecord(func(r *kgo.Record) { values = append(values, string(r.Value)) })
		if pollCtx.Err() != nil {
			break
		}
	}
	if len(values) < count {
		err := fmt.Errorf("got %d of %d records within %v", len(values), count, timeout)
		if lastErr != nil {
			err = fmt.Errorf("%w (last fetch error: %w)", err, lastErr)
		}
		return values, err
	}
	return values, nil
}

// firstError records the first connection-level error franz-go meets (the first refusal, if
// any), which is the one that says why the server refused us: the producer and consumer retry
// such errors until the deadline and then report only "context deadline exceeded".
type firstError struct {
	mu  sync.Mutex
	err error
}

func (f *firstError) note(err error) {
	if err == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err == nil || (isRefusal(err) && !isRefusal(f.err)) {
		f.err = err
	}
}

func (f *firstError) get() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

func (f *firstError) OnBrokerConnect(_ kgo.BrokerMetadata, _ time.Duration, _ net.Conn, err error) {
	f.note(err)
}

func (f *firstError) OnBrokerRead(_ kgo.BrokerMetadata, _ int16, _ int, _, _ time.Duration, err error) {
	f.note(err)
}

func (f *firstError) OnBrokerWrite(_ kgo.BrokerMetadata, _ int16, _ int, _, _ time.Duration, err error) {
	f.note(err)
}

// cmdRefused expects the server to refuse this certificate: exit 3 with the first error when
// it does, exit 1 when the Metadata request succeeds.
func cmdRefused(ctx context.Context, o options, start time.Time) (result, error) {
	// One attempt: a refusal is final, and retrying would only hide how fast it came.
	cl, err := newClient(o, kgo.RequestRetries(0), kgo.RetryTimeout(5*time.Second))
	if err != nil {
		return result{}, err
	}
	defer cl.Close()
	_, reqErr := cl.Request(ctx, kmsg.NewPtrMetadataRequest())
	elapsed := time.Since(start).Milliseconds()
	if reqErr == nil {
		return result{body: map[string]any{"refused": false, "elapsed_ms": elapsed}},
			errors.New("the Metadata request succeeded: the client was not refused")
	}
	err = reqErr
	if first := connErrors.get(); first != nil {
		err = first
	}
	fmt.Fprintf(os.Stderr, "request error: %v\nfirst connection error: %v\n", reqErr, connErrors.get())
	body := map[string]any{"refused": isRefusal(err), "elapsed_ms": elapsed}
	if !isRefusal(err) {
		return result{body: body}, fmt.Errorf("not a refusal: %w", err)
	}
	return result{body: body}, err
}
