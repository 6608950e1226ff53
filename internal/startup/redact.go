package startup

import (
	"net/url"
	"regexp"
	"strings"
)

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
	if u.RawQuery != "" {
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
	}
	return u.String()
}
