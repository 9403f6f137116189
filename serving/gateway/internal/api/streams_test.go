package api

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/yoloforge/yoloforge/serving/gateway/internal/auth"
	"github.com/yoloforge/yoloforge/serving/gateway/internal/batcher"
	"github.com/yoloforge/yoloforge/serving/gateway/internal/cache"
)

// streamServer is a server fronting the stream service at streams (nil: none), with one API key, "k".
func streamServer(t *testing.T, streams *url.URL) *Server {
	t.Helper()
	s := New(Options{Info: ModelInfo{Name: "m", Version: "v", Task: "detect", Names: []string{"a"}, Imgsz: 32},
		MaxBody: 1 << 20, RequestTimeout: time.Second, RetryAfter: 2, AuthRequired: true, StreamsURL: streams,
		Batcher: batcher.Options{MaxBatch: 1, MaxWait: time.Millisecond, MaxQueue: 1}},
		Deps{Keys: auth.NewKeys([]string{"k"}), Cache: cache.Disabled{}})
	t.Cleanup(s.Close)
	return s
}

func serve(s *Server, method, path, key, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	return rec
}

func TestStreamRoutesAreForwardedWithTheirMethodPathAndBody(t *testing.T) {
	type seen struct{ method, path, body string }
	var got []seen
	service := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got = append(got, seen{r.Method, r.URL.Path, string(body)})
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"name":"cam"}`))
	}))
	defer service.Close()
	target, _ := url.Parse(service.URL)
	s := streamServer(t, target)
	rec := serve(s, http.MethodPost, "/v1/streams", "k", `{"source":"a.mp4"}`)
	if rec.Code != http.StatusCreated || rec.Body.String() != `{"name":"cam"}` {
		t.Fatalf("POST /v1/streams: %d %s", rec.Code, rec.Body)
	}
	serve(s, http.MethodDelete, "/v1/streams/cam", "k", "")
	want := []seen{{"POST", "/v1/streams", `{"source":"a.mp4"}`}, {"DELETE", "/v1/streams/cam", ""}}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("the service saw %v, want %v", got, want)
	}
}

func TestStreamRoutesNeedAnAPIKeyBeforeAnythingIsForwarded(t *testing.T) {
	forwarded := 0
	service := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { forwarded++ }))
	defer service.Close()
	target, _ := url.Parse(service.URL)
	s := streamServer(t, target)
	for _, key := range []string{"", "wrong"} {
		if rec := serve(s, http.MethodGet, "/v1/streams", key, ""); rec.Code != http.StatusUnauthorized {
			t.Errorf("key %q: %d, want 401", key, rec.Code)
		}
	}
	if forwarded != 0 {
		t.Fatalf("%d requests without a valid key reached the stream service", forwarded)
	}
}

func TestAStreamServiceThatDoesNotAnswerIsA503WithRetryAfterInTheErrorBody(t *testing.T) {
	service := httptest.NewServer(http.NotFoundHandler())
	target, _ := url.Parse(service.URL)
	service.Close() // nothing listens there any more
	rec := serve(streamServer(t, target), http.MethodGet, "/v1/streams", "k", "")
	var body struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("%d %s: %v", rec.Code, rec.Body, err)
	}
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") != "2" ||
		body.Error.Code != "streams_unavailable" {
		t.Fatalf("%d Retry-After %q %s", rec.Code, rec.Header().Get("Retry-After"), rec.Body)
	}
}

func TestWithoutAStreamServiceTheStreamRoutesAre404(t *testing.T) {
	rec := serve(streamServer(t, nil), http.MethodGet, "/v1/streams", "k", "")
	if rec.Code != http.StatusNotFound || strings.Contains(rec.Body.String(), "/v1/streams\"") {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
}
