// franz-client drives franz-go (github.com/twmb/franz-go) against a Kafka endpoint over mTLS,
// for the proxy's end-to-end client matrix.
//
//	franz-client --bootstrap HOST:PORT --ca CA.pem --cert X.pem --key X.key
//	             [--deadline 30s] [--max-tls 1.3] [--log info] COMMAND ...
//
// Commands: list; create TOPIC [--partitions N] [--replication-factor N];
// produce TOPIC --count N [--prefix STR];
// consume TOPIC --group G --count N [--timeout-ms MS] [--group-protocol classic|consumer];
// refused.
//
// It prints exactly one JSON object on stdout (diagnostics go to stderr) and exits 0 on success,
// 3 when the client was refused (TLS alert from the server, connection closed on the first
// read, failed authentication) and 1 on any other error (usage errors too), with
// {"error": "..."}. --deadline bounds the whole command.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

const (
	exitOK      = 0
	exitError   = 1
	exitRefused = 3
)

// options are the connection flags shared by every command.
type options struct {
	bootstrap string
	ca        string
	cert      string
	key       string
	deadline  time.Duration
	maxTLS    string
	logLevel  string
	connectTo string
}

// result is what a command prints: a JSON object and the exit code that goes with it.
type result struct {
	body map[string]any
	code int
}

func ok(body map[string]any) result { return result{body, exitOK} }

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	var o options
	fs := flag.NewFlagSet("franz-client", flag.ContinueOnError)
	fs.StringVar(&o.bootstrap, "bootstrap", "", "HOST:PORT of the proxy (or broker)")
	fs.StringVar(&o.ca, "ca", "", "PEM file of the CA that signed the server certificate")
	fs.StringVar(&o.cert, "cert", "", "PEM file of the client certificate (chain)")
	fs.StringVar(&o.key, "key", "", "PEM file of the client's private key")
	fs.DurationVar(&o.deadline, "deadline", 30*time.Second, "bound on the whole operation")
	fs.StringVar(&o.maxTLS, "max-tls", "1.3", "highest TLS version offered: 1.2 or 1.3")
	fs.StringVar(&o.logLevel, "log", "info", "franz-go log level on stderr: none, error, warn, info, debug")
	fs.StringVar(&o.connectTo, "connect-to", "", "dial this IP for every address (keeping its port, and its host as the TLS server name): SNI routing without DNS")
	if err := fs.Parse(args); err != nil {
		return usage(err)
	}
	if fs.NArg() == 0 {
		return usage(errors.New("missing command: list, create, produce, consume or refused"))
	}
	if o.bootstrap == "" || o.ca == "" {
		return usage(errors.New("--bootstrap and --ca are required"))
	}

	ctx, cancel := context.WithTimeout(context.Background(), o.deadline)
	defer cancel()
	start := time.Now()

	var res result
	var err error
	switch cmd, rest := fs.Arg(0), fs.Args()[1:]; cmd {
	case "list":
		res, err = cmdList(ctx, o)
	case "create":
		res, err = cmdCreate(ctx, o, rest)
	case "produce":
		res, err = cmdProduce(ctx, o, rest)
	case "consume":
		res, err = cmdConsume(ctx, o, rest)
	case "refused":
		res, err = cmdRefused(ctx, o, start)
	default:
		return usage(fmt.Errorf("unknown command %q", cmd))
	}
	if err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			return usage(err)
		}
		res = failure(err, res.body)
	}
	emit(res.body)
	return res.code
}

// connErrors sees every connection of the (one) client a command makes.
var connErrors = &firstError{}

// failure turns err into the error object, keeping what the command had already gathered.
func failure(err error, partial map[string]any) result {
	if first := connErrors.get(); !isRefusal(err) && isRefusal(first) {
		err = fmt.Errorf("%w (refused on connecting: %w)", err, first)
	}
	body := map[string]any{"error": err.Error()}
	for k, v := range partial {
		body[k] = v
	}
	if isRefusal(err) {
		body["refused"] = true
		return result{body, exitRefused}
	}
	return result{body, exitError}
}

type usageError struct{ error }

func usage(err error) int {
	fmt.Fprintf(os.Stderr, "franz-client: %v\n", err)
	emit(map[string]any{"error": "usage: " + err.Error()})
	return exitError
}

func emit(body map[string]any) {
	out, err := json.Marshal(body)
	if err != nil {
		out = []byte(`{"error": "cannot encode the result"}`)
	}
	fmt.Println(string(out))
}

// parseCommand splits a command's arguments into the positional TOPIC and its flags, in
// whichever order they come (Go's flag package stops at the first positional argument).
func parseCommand(name string, fs *flag.FlagSet, args []string) (string, error) {
	fs.SetOutput(os.Stderr)
	var topic string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		topic, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return "", usageError{err}
	}
	if topic == "" && fs.NArg() > 0 {
		topic = fs.Arg(0)
	} else if fs.NArg() > 0 {
		return "", usageError{fmt.Errorf("%s: unexpected arguments %q", name, fs.Args())}
	}
	if topic == "" {
		return "", usageError{fmt.Errorf("%s: missing TOPIC", name)}
	}
	return topic, nil
}

// tlsConfig is the client side of mTLS. ServerName stays empty: franz-go fills it with the
// host of each address it dials, so every advertised broker address is verified too.
func tlsConfig(o options) (*tls.Config, error) {
	pem, err := os.ReadFile(o.ca)
	if err != nil {
		return nil, fmt.Errorf("reading --ca: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--ca %s: no PEM certificate found", o.ca)
	}
	cfg := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS13}
	switch o.maxTLS {
	case "1.2":
		cfg.MaxVersion = tls.VersionTLS12
	case "1.3":
	default:
		return nil, usageError{fmt.Errorf("--max-tls: 1.2 or 1.3, not %q", o.maxTLS)}
	}
	if o.cert != "" || o.key != "" {
		pair, err := tls.LoadX509KeyPair(o.cert, o.key)
		if err != nil {
			return nil, fmt.Errorf("loading --cert/--key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

func logger(level string) (kgo.Logger, error) {
	levels := map[string]kgo.LogLevel{"none": kgo.LogLevelNone, "error": kgo.LogLevelError,
		"warn": kgo.LogLevelWarn, "info": kgo.LogLevelInfo, "debug": kgo.LogLevelDebug}
	l, found := levels[level]
	if !found {
		return nil, usageError{fmt.Errorf("--log: unknown level %q", level)}
	}
	return kgo.BasicLogger(os.Stderr, l, func() string {
		return time.Now().Format("15:04:05.000 ")
	}), nil
}

// newClient builds a franz-go client for o plus the command's own options.
func newClient(o options, extra ...kgo.Opt) (*kgo.Client, error) {
	cfg, err := tlsConfig(o)
	if err != nil {
		return nil, err
	}
	log, err := logger(o.logLevel)
	if err != nil {
		return nil, err
	}
	dial := kgo.DialTLSConfig(cfg)
	if o.connectTo != "" {
		dial = kgo.Dialer(connectTo(o.connectTo, cfg))
	}
	opts := append([]kgo.Opt{
		kgo.SeedBrokers(strings.Split(o.bootstrap, ",")...),
		dial,
		kgo.DialTimeout(10 * time.Second),
		kgo.WithLogger(log),
		kgo.WithHooks(connErrors),
		kgo.ClientID("franz-client"),
	}, extra...)
	return kgo.NewClient(opts...)
}

// connectTo is a dialer that connects every address HOST:PORT to ip:PORT over TLS with HOST as
// the server name (SNI) and the name verified: a resolver hook, so tests of SNI routing need no
// DNS server. (franz-go refuses DialTLSConfig next to a Dialer: TLS is done here.)
func connectTo(ip string, cfg *tls.Config) func(ctx context.Context, network, host string) (net.Conn, error) {
	return func(ctx context.Context, network, host string) (net.Conn, error) {
		name, port, err := net.SplitHostPort(host)
		if err != nil {
			return nil, err
		}
		tc := cfg.Clone()
		tc.ServerName = name
		d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second}, Config: tc}
		return d.DialContext(ctx, network, net.JoinHostPort(ip, port))
	}
}

// isRefusal says whether err means the server turned this client away: a TLS alert from the
// peer (in the handshake, or — with TLS 1.3, where the client finishes first — on the first
// read), a connection closed before any answer, or a failed SASL authentication.
func isRefusal(err error) bool {
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "remote error" {
		return true
	}
	var firstEOF *kgo.ErrFirstReadEOF
	if errors.As(err, &firstEOF) {
		return true
	}
	return errors.Is(err, kerr.SaslAuthenticationFailed) ||
		errors.Is(err, kerr.IllegalSaslState) ||
		errors.Is(err, kerr.UnsupportedSaslMechanism)
}
