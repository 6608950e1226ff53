package startup

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/redis/go-redis/v9"
)

// RedisTarget is what WB_REDIS_URL names: one server (redis://,
// rediss://), a Redis Cluster seeded by one or more of its nodes
// (redis+cluster://host:port[,host:port...]), or a primary found through
// Sentinel (redis+sentinel://host:port[,host:port...]/MASTER[/db]); the
// rediss+ forms use TLS. User and password are the data nodes'. Query
// options are go-redis's, in snake case (dial_timeout=3s, pool_size=50).
type RedisTarget struct {
	single   *redis.Options
	cluster  *redis.ClusterOptions
	failover *redis.FailoverOptions
}

// clusterRedirects is how many MOVED and ASK redirects a cluster client
// follows unless the URL sets max_redirects.
const clusterRedirects = 16

// ParseRedisURL parses WB_REDIS_URL; errors do not repeat the password.
func ParseRedisURL(raw string) (RedisTarget, error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return RedisTarget{}, RedactError(fmt.Errorf("no scheme"), raw)
	}
	base, kind, _ := strings.Cut(scheme, "+")
	if base != "redis" && base != "rediss" || kind != "" && kind != "cluster" && kind != "sentinel" {
		return RedisTarget{}, RedactError(fmt.Errorf("scheme %q: want redis, rediss, redis+cluster or redis+sentinel", scheme), raw)
	}
	var t RedisTarget
	var err error
	switch kind {
	case "":
		t.single, err = redis.ParseURL(raw)
	case "cluster":
		var u string
		if u, err = seeded(base, rest, ""); err == nil {
			t.cluster, err = redis.ParseClusterURL(u)
		}
		if err == nil && t.cluster.MaxRedirects == 0 {
			// While slots move, a command can be sent back and forth more
			// often than go-redis's default three redirects allow.
			t.cluster.MaxRedirects = clusterRedirects
		}
	case "sentinel":
		var u string
		if u, err = seeded(base, rest, "master"); err == nil {
			t.failover, err = redis.ParseFailoverURL(u)
		}
		if err == nil {
			// The userinfo is the data nodes' (go-redis gives it to the
			// sentinels): the sentinels are asked without.
			t.failover.Username, t.failover.Password = t.failover.SentinelUsername, t.failover.SentinelPassword
			t.failover.SentinelUsername, t.failover.SentinelPassword = "", ""
		}
	}
	if err != nil {
		return RedisTarget{}, RedactError(err, raw)
	}
	return t, nil
}

// seeded rewrites the list of nodes of a cluster or sentinel URL (after its
// scheme) into the form go-redis parses: the first node as the host, the
// others as addr options; for Sentinel the master name, the first part of
// the path, becomes the master_name option.
func seeded(base, rest, master string) (string, error) {
	u, err := url.Parse(base + "://" + rest)
	if err != nil {
		return "", err
	}
	nodes := strings.Split(u.Host, ",")
	if nodes[0] == "" {
		return "", fmt.Errorf("no node to connect to")
	}
	q := u.Query()
	for _, n := range nodes[1:] {
		q.Add("addr", n)
	}
	u.Host = nodes[0]
	if master != "" {
		name, db, _ := strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
		if name == "" {
			return "", fmt.Errorf("no master name: want redis+sentinel://host:port/MASTER")
		}
		q.Set("master_name", name)
		u.Path = "/" + db
	} else if strings.Trim(u.Path, "/") != "" {
		return "", fmt.Errorf("a cluster has no database number: %q", u.Path)
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// Client returns a client of the target with room for poolSize connections
// per node (0: the go-redis default). It does not connect yet.
func (t RedisTarget) Client(poolSize int) redis.UniversalClient {
	size := func(pool *int) {
		if poolSize > 0 {
			*pool = poolSize
		}
	}
	switch {
	case t.cluster != nil:
		size(&t.cluster.PoolSize)
		return redis.NewClusterClient(t.cluster)
	case t.failover != nil:
		size(&t.failover.PoolSize)
		return redis.NewFailoverClient(t.failover)
	}
	size(&t.single.PoolSize)
	return redis.NewClient(t.single)
}

// redacted replaces a secret in anything logged or printed.
const redacted = "xxxxx"

var (
	// dsnPassword is a password in a key=value connection string.
	dsnPassword = regexp.MustCompile(`(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)
	// userinfo is the user:password@ part of a URL net/url cannot parse.
	userinfo = regexp.MustCompile(`://[^/?#]*@`)
)

// RedactURL returns a Redis or PostgreSQL URL (or key=value connection
// string) fit for logs: any password, in the user info or in a query
// parameter, is replaced. Logs never carry a connection URL any other way.
func RedactURL(s string) string {
	if !strings.Contains(s, "://") {
		return dsnPassword.ReplaceAllString(s, "${1}"+redacted)
	}
	u, err := url.Parse(s)
	if err != nil {
		return userinfo.ReplaceAllString(s, "://"+redacted+"@")
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), redacted)
	}
	q := u.Query()
	changed := false
	for k := range q {
		if strings.Contains(strings.ToLower(k), "password") {
			q.Set(k, redacted)
			changed = true
		}
	}
	if changed {
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// queryPassword is a password given as a URL query parameter.
var queryPassword = regexp.MustCompile(`(?i)[?&][a-z]*password=([^&#]*)`)

// secrets returns the passwords a connection URL or string holds, as
// written in it.
func secrets(raw string) []string {
	var out []string
	if _, rest, ok := strings.Cut(raw, "://"); ok {
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			if _, pw, ok := strings.Cut(rest[:at], ":"); ok && pw != "" {
				out = append(out, pw)
			}
		}
		for _, m := range queryPassword.FindAllStringSubmatch(raw, -1) {
			out = append(out, m[1])
		}
	} else {
		for _, m := range dsnPassword.FindAllStringSubmatch(raw, -1) {
			out = append(out, strings.Trim(m[2], "'"))
		}
	}
	return out
}

// redactedError is an error whose message had the passwords removed.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// RedactError returns err with every password of the connection string raw
// removed from its message (url.Parse, for one, quotes the whole URL in its
// errors). errors.Is and errors.As still see err.
func RedactError(err error, raw string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	for _, s := range secrets(raw) {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, redacted)
		}
	}
	return &redactedError{msg: msg, err: err}
}
