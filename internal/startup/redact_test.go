package startup

import "testing"

func TestRedactURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"},
		{"redis://:s3cret@redis:6379/0", "redis://:xxxxx@redis:6379/0"},
		{"rediss://app:s3cret@redis:6380/1", "rediss://app:xxxxx@redis:6380/1"},
		{"postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"},
		{"postgres://wb:p%40ss@db:5432/app?sslmode=require", "postgres://wb:xxxxx@db:5432/app?sslmode=require"},
		{"postgres://db/app?user=wb&password=s3cret", "postgres://db/app?password=xxxxx&user=wb"},
		{"host=db user=wb password=s3cret dbname=app", "host=db user=wb password=xxxxx dbname=app"},
		{"host=db password='s3 cret' dbname=app", "host=db password=xxxxx dbname=app"},
		{"postgres://wb:s3cret@db:bad port/app", "postgres://xxxxx@db:bad port/app"},
	} {
		if got := RedactURL(tc.in); got != tc.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
