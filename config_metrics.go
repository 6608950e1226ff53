package writebehind

import "strconv"

// validPort reports whether s is a TCP port number (0 picks a free one).
func validPort(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n >= 0 && n <= 65535
}
