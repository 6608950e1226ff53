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
	if i := strings.Index(raw, "://"); i >= 0 {
		rest := raw[i+3:]
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
