package cache

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrClockSkew is returned for an op refused, with nothing written, because
// its version would be further ahead of Redis's clock than allowed (the
// version rule's skew): the writer's clock runs far ahead, or the partition
// clock was set far ahead. Such a version would win over every later write
// of the key. The root package exports it as ErrClockSkew, hence its prefix.
var ErrClockSkew = errors.New("writebehind: clock skew")

// DefaultMaxClockSkew is how far ahead of Redis's clock a version may be.
const DefaultMaxClockSkew = time.Minute

// SkewMicros is the version rule's skew for a bound d (0: the default).
func SkewMicros(d time.Duration) int64 {
	if d <= 0 {
		return DefaultMaxClockSkew.Microseconds()
	}
	return d.Microseconds()
}

// ParseVersion reads the version a script took, or its CLOCKSKEW as ErrClockSkew.
func ParseVersion(cmd *redis.Cmd) (int64, error) {
	s, err := cmd.Text()
	if redis.HasErrorPrefix(err, "CLOCKSKEW") {
		return 0, fmt.Errorf("%w: %v", ErrClockSkew, err)
	}
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(s, 10, 64)
}
