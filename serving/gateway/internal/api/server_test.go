package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"image"
	"image/png"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/yoloforge/yoloforge/serving/gateway/internal/auth"
	"github.com/yoloforge/yoloforge/serving/gateway/internal/batcher"
	"github.com/yoloforge/yoloforge/serving/gateway/internal/cache"
	"github.com/yoloforge/yoloforge/serving/gateway/internal/workers"
	"github.com/yoloforge/yoloforge/serving/gateway/internal/yolo"
)

// lostDevice is an engine whose device is gone: every call fails.
type lostDevice struct{}

func (lostDevice) Infer(context.Context, []float32, int) ([][]yolo.Output, error) {
	return nil, errors.New("device lost")
}
func (lostDevice) Close() error { return nil }

func classifyServer(t *testing.T, ws ...workers.Worker) *Server {
	t.Helper()
	s := New(Options{Info: ModelInfo{Name: "m", Version: "v", Task: "classify", Names: []string{"a", "b"}, Imgsz: 32},
		MaxBody: 1 << 20, RequestTimeout: time.Second, RetryAfter: 1,
		Batcher: batcher.Options{MaxBatch: 2, MaxWait: time.Millisecond, MaxQueue: 4}},
		Deps{Keys: auth.NewKeys(nil), Cache: cache.Disabled{}})
	pool, err := workers.New(ws)
	if err != nil {
		t.Fatal(err)
	}
	s.Attach(pool)
	t.Cleanup(s.Close)
	return s
}

func pngImage(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, image.NewRGBA(image.Rect(0, 0, 8, 8))); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestWhenEveryWorkerHasFailedPredictIs503AndReadyzSaysWhich(t *testing.T) {
	s := classifyServer(t, workers.Worker{Name: "cpu/0", Engine: lostDevice{}})
	req := httptest.NewRequest(http.MethodPost, "/v1/predict", bytes.NewReader(pngImage(t)))
	req.Header.Set("Content-Type", "image/png")
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("predict: %d %s", rec.Code, rec.Body)
	}
	rec = httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	var ready struct {
		Ready   bool
		Model   string
		Workers []workers.Status
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &ready); err != nil {
		t.Fatal(err)
	}
	if rec.Code != http.StatusServiceUnavailable || ready.Ready || ready.Model != "failed" ||
		len(ready.Workers) != 1 || ready.Workers[0].State != "failed" || ready.Workers[0].Error != "device lost" {
		t.Fatalf("readyz: %d %s", rec.Code, rec.Body)
	}
}

func TestAWrongMethodIs405WithTheAllowHeader(t *testing.T) {
	s := classifyServer(t, workers.Worker{Name: "cpu/0", Engine: lostDevice{}})
	for path, allow := range map[string]string{"/v1/predict": "POST", "/v1/model": "GET", "/healthz": "GET"} {
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest(http.MethodDelete, path, nil))
		if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != allow {
			t.Errorf("DELETE %s: %d, Allow %q, want 405 and %q", path, rec.Code, rec.Header().Get("Allow"), allow)
		}
	}
}
