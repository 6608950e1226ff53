package startup

import (
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestParseRedisURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		url   string
		check func(t *testing.T, c redis.UniversalClient)
	}{
		{"redis://:pw@127.0.0.1:6380/2?dial_timeout=3s", func(t *testing.T, c redis.UniversalClient) {
			o := c.(*redis.Client).Options()
			if o.Addr != "127.0.0.1:6380" || o.DB != 2 || o.Password != "pw" || o.DialTimeout != 3*time.Second {
				t.Errorf("options %+v", o)
			}
		}},
		{"redis+cluster://u:pw@10.0.0.1:7000,10.0.0.2:7001,10.0.0.3:7002?pool_size=7", func(t *testing.T, c redis.UniversalClient) {
			o := c.(*redis.ClusterClient).Options()
			if strings.Join(o.Addrs, ",") != "10.0.0.1:7000,10.0.0.2:7001,10.0.0.3:7002" || o.Username != "u" || o.Password != "pw" || o.PoolSize != 7 || o.TLSConfig != nil || o.MaxRedirects != clusterRedirects {
				t.Errorf("options %+v", o)
			}
		}},
		{"rediss+cluster://10.0.0.1:7000", func(t *testing.T, c redis.UniversalClient) {
			if o := c.(*redis.ClusterClient).Options(); o.TLSConfig == nil {
				t.Error("rediss+cluster without TLS")
			}
		}},
	} {
		target, err := ParseRedisURL(tc.url)
		if err != nil {
			t.Fatalf("%s: %v", tc.url, err)
		}
		c := target.Client(0)
		tc.check(t, c)
		_ = c.Close()
	}

	// A Sentinel target: the sentinels, the master's name and database, and
	// the data nodes' password, which the sentinels are not asked for.
	target, err := ParseRedisURL("redis+sentinel://:pw@10.0.0.1:26379,10.0.0.2:26379/mymaster/3?read_timeout=2s")
	if err != nil {
		t.Fatal(err)
	}
	o := target.failover
	if strings.Join(o.SentinelAddrs, ",") != "10.0.0.1:26379,10.0.0.2:26379" || o.MasterName != "mymaster" || o.DB != 3 ||
		o.Password != "pw" || o.SentinelPassword != "" || o.ReadTimeout != 2*time.Second {
		t.Errorf("sentinel options %+v", o)
	}

	for _, bad := range []string{
		"http://:secret@host:1",
		"redis+shard://:secret@host:1",
		"redis+cluster://:secret@host:1/3",
		"redis+cluster://:secret@/",
		"redis+sentinel://:secret@host:1",
		"redis+sentinel://:secret@host:1/m?no_such_option=1",
		"redis://:secret@host:1/x",
	} {
		_, err := ParseRedisURL(bad)
		if err == nil {
			t.Errorf("%s: no error", bad)
			continue
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: the error shows the password: %v", bad, err)
		}
	}
}
