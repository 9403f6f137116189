// Package api is the HTTP side of the server: serving/openapi.yaml's routes, auth, limits, the answer cache,
// the dynamic batcher in front of the engine, metrics and the inference log.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/yoloforge/yoloforge/serving/gateway/internal/auth"
	"github.com/yoloforge/yoloforge/serving/gateway/internal/batcher"
	"github.com/yoloforge/yoloforge/serving/gateway/internal/cache"
	"github.com/yoloforge/yoloforge/serving/gateway/internal/engine"
	"github.com/yoloforge/yoloforge/serving/gateway/internal/store"
	"github.com/yoloforge/yoloforge/serving/gateway/internal/yolo"
)

// ModelInfo is GET /v1/model.
type ModelInfo struct {
	Name    string     `json:"name"`
	Version string     `json:"version"`
	Task    string     `json:"task"`
	Names   []string   `json:"names"`
	Imgsz   int        `json:"imgsz"`
	Engine  EngineInfo `json:"engine"`
}

// EngineInfo is the engine part of ModelInfo.
type EngineInfo struct {
	Backend      string  `json:"backend"`
	Precision    string  `json:"precision"`
	Batch        int     `json:"batch"`
	Device       string  `json:"device"`
	MaxBatchSize int     `json:"max_batch_size"`
	BatchWaitMS  float64 `json:"batch_wait_ms"`
}

// Logger is where inference log rows go (the Postgres store, or nothing).
type Logger interface {
	Log(store.Entry)
}

// Options configure a Server.
type Options struct {
	Info           ModelInfo
	MaxBody        int64
	RequestTimeout time.Duration
	RetryAfter     int
	AuthRequired   bool
	Batcher        batcher.Options
}

// Server answers the contract. The engine is attached when loaded, so /healthz answers during a long load
// (a TensorRT engine build) and /readyz says "loading".
type Server struct {
	opts    Options
	model   yolo.Model
	keys    *auth.Keys
	cache   cache.Cache
	logger  Logger
	log     *slog.Logger
	metrics *Metrics
	state   atomic.Value // "loading", "loaded", "failed"
	batch   atomic.Pointer[batcher.Batcher[[]float32, []yolo.Output]]
	deps    func() map[string]string
	mux     *http.ServeMux
	// input tensors are large (1.2 MB at 320 px): reused, so the garbage collector does not take the CPU the
	// engine needs
	tensors      sync.Pool
	batchBuffers sync.Pool
}

// Register adds series of another source (the GPUs) to /metrics.
func (s *Server) Register(c prometheus.Collector) error { return s.metrics.Registry.Register(c) }

// New builds the server; call Attach with the engine once it is loaded.
func New(opts Options, keys *auth.Keys, c cache.Cache, logger Logger, log *slog.Logger,
	deps func() map[string]string, logDropped func() float64) *Server {
	s := &Server{opts: opts, keys: keys, cache: c, logger: logger, log: log, deps: deps,
		model: yolo.Model{Task: opts.Info.Task, Names: opts.Info.Names, Imgsz: opts.Info.Imgsz}}
	s.state.Store("loading")
	per := 3 * opts.Info.Imgsz * opts.Info.Imgsz
	s.tensors.New = func() any { t := make([]float32, per); return &t }
	s.batchBuffers.New = func() any { t := make([]float32, 0); return &t }
	s.metrics = NewMetrics(func() float64 {
		if b := s.batch.Load(); b != nil {
			return float64(b.Len())
		}
		return 0
	}, logDropped)
	s.opts.Batcher.Observe = func(n int) { s.metrics.BatchSize.Observe(float64(n)) }
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/predict", s.route("predict", http.MethodPost, true, s.predict))
	mux.HandleFunc("/v1/model", s.route("model", http.MethodGet, true, s.modelInfo))
	mux.HandleFunc("/healthz", s.route("healthz", http.MethodGet, false, s.healthz))
	mux.HandleFunc("/readyz", s.route("readyz", http.MethodGet, false, s.readyz))
	metrics := promhttp.HandlerFor(s.metrics.Registry, promhttp.HandlerOpts{})
	mux.HandleFunc("/metrics", s.route("metrics", http.MethodGet, false, func(w http.ResponseWriter, r *http.Request) *Error {
		metrics.ServeHTTP(w, r)
		return nil
	}))
	mux.HandleFunc("/", s.route("other", "", false, func(w http.ResponseWriter, r *http.Request) *Error {
		return &Error{Status: http.StatusNotFound, Code: "not_found",
			Message: fmt.Sprintf("no route %s; the API has POST /v1/predict, GET /v1/model, /healthz, /readyz, /metrics", r.URL.Path)}
	}))
	s.mux = mux
	return s
}

// Metrics gives the Prometheus series (for dependency gauges set by main).
func (s *Server) Metrics() *Metrics { return s.metrics }

// Attach starts batching onto a loaded engine.
func (s *Server) Attach(e engine.Engine) {
	imgsz := s.model.Imgsz
	per := 3 * imgsz * imgsz
	run := func(ctx context.Context, items [][]float32) ([][]yolo.Output, error) {
		input := items[0]
		if len(items) > 1 { // one contiguous batch; a lone image goes as it is
			buf := s.batchBuffers.Get().(*[]float32)
			defer s.batchBuffers.Put(buf)
			if cap(*buf) < len(items)*per {
				*buf = make([]float32, len(items)*per)
			}
			input = (*buf)[:len(items)*per]
			for i, it := range items {
				copy(input[i*per:], it)
			}
		}
		started := time.Now()
		outs, err := e.Infer(ctx, input, len(items))
		s.metrics.Stage.WithLabelValues("inference").Observe(time.Since(started).Seconds())
		return outs, err
	}
	s.batch.Store(batcher.New(run, s.opts.Batcher))
	s.state.Store("loaded")
}

// Failed marks the model as failed to load (readyz 503).
func (s *Server) Failed() { s.state.Store("failed") }

// Close drains the batcher (after the HTTP server has stopped taking requests).
func (s *Server) Close() {
	if b := s.batch.Load(); b != nil {
		b.Close()
	}
}

// ServeHTTP makes Server an http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

type handler func(w http.ResponseWriter, r *http.Request) *Error

// statusWriter records the status for metrics.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (s *Server) route(name, method string, secured bool, h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		started := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		err := s.guard(r, method, secured)
		if err == nil {
			err = h(sw, r)
		}
		if err != nil {
			s.writeError(sw, err)
		}
		s.metrics.Requests.WithLabelValues(name, strconv.Itoa(sw.status)).Inc()
		s.metrics.Latency.WithLabelValues(name).Observe(time.Since(started).Seconds())
	}
}

func (s *Server) guard(r *http.Request, method string, secured bool) *Error {
	if method != "" && r.Method != method {
		return &Error{Status: http.StatusMethodNotAllowed, Code: "method_not_allowed",
			Message: fmt.Sprintf("%s %s is not allowed; use %s", r.Method, r.URL.Path, method)}
	}
	if !secured || !s.opts.AuthRequired {
		return nil
	}
	key := auth.Bearer(r.Header.Get("Authorization"))
	if key == "" {
		return &Error{Status: http.StatusUnauthorized, Code: "unauthorized",
			Message: "missing API key: send 'Authorization: Bearer <key>' (create one with `yoloforge-server keys create`)"}
	}
	if !s.keys.Valid(key) {
		msg := "the API key is not valid (revoked, mistyped, or from another server)"
		if s.keys.Len() == 0 {
			msg = "no API key is configured on this server: create one with `yoloforge-server keys create --name NAME` " +
				"or set YOLOFORGE_API_KEYS"
		}
		return &Error{Status: http.StatusUnauthorized, Code: "unauthorized", Message: msg}
	}
	return nil
}

func (s *Server) writeError(w http.ResponseWriter, e *Error) {
	if e.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="yoloforge"`)
	}
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.RetryAfter))
	}
	if e.Status >= 500 && e.Code == "internal" {
		s.log.Error("request failed", "error", e.Message)
	}
	writeJSON(w, e.Status, map[string]any{"error": map[string]string{"code": e.Code, "message": e.Message}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// PredictResponse is the 200 answer of /v1/predict.
type PredictResponse struct {
	Model      ModelRef           `json:"model"`
	Task       string             `json:"task"`
	Image      ImageSize          `json:"image"`
	Detections *[]yolo.Detection  `json:"detections,omitempty"`
	Top        []yolo.ClassScore  `json:"top,omitempty"`
	TimingMS   map[string]float64 `json:"timing_ms"`
	Cached     bool               `json:"cached"`
}

// ModelRef names the model in an answer.
type ModelRef struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// ImageSize is the original image's size.
type ImageSize struct {
	Width  int `json:"width"`
	Height int `json:"height"`
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func (s *Server) predict(w http.ResponseWriter, r *http.Request) *Error {
	started := time.Now()
	entry := store.Entry{At: started, ModelVersion: s.opts.Info.Version,
		KeyID: store.KeyID(auth.Hash(auth.Bearer(r.Header.Get("Authorization"))))}
	resp, body, err := s.answer(w, r, started)
	entry.LatencyMS = ms(time.Since(started))
	entry.ImageBytes = body
	if err != nil {
		entry.Status, entry.ErrorCode = err.Status, err.Code
	} else {
		entry.Status, entry.Cached = http.StatusOK, resp.Cached
		if resp.Detections != nil {
			entry.Detections = len(*resp.Detections)
		} else {
			entry.Detections = len(resp.Top)
		}
	}
	if s.logger != nil {
		s.logger.Log(entry)
	}
	return err
}

func (s *Server) answer(w http.ResponseWriter, r *http.Request, started time.Time) (*PredictResponse, int, *Error) {
	b := s.batch.Load()
	if b == nil {
		return nil, 0, &Error{Status: http.StatusServiceUnavailable, Code: "overloaded",
			Message: "the model is " + s.state.Load().(string) + "; retry shortly", RetryAfter: s.opts.RetryAfter}
	}
	opts, perr := ParseOptions(r.URL.Query())
	if perr != nil {
		return nil, 0, perr
	}
	if r.ContentLength > s.opts.MaxBody {
		return nil, 0, &Error{Status: http.StatusRequestEntityTooLarge, Code: "too_large",
			Message: fmt.Sprintf("the body is %d bytes, over the %d-byte limit (limits.max_body_mb)", r.ContentLength, s.opts.MaxBody)}
	}
	r.Body = http.MaxBytesReader(w, r.Body, s.opts.MaxBody)
	data, rerr := ReadImage(r.Header.Get("Content-Type"), r.Body)
	if rerr != nil {
		return nil, 0, rerr
	}
	ctx := r.Context()
	caching := s.cache.Enabled()
	key := ""
	if caching { // hashing a large image is not free: only when there is a cache to ask
		key = cache.Key(s.opts.Info.Version, data, s.paramKey(opts))
	}
	if cached, ok := s.cache.Get(ctx, key); caching && ok {
		var resp PredictResponse
		if json.Unmarshal(cached, &resp) == nil {
			s.metrics.Cache.WithLabelValues("hit").Inc()
			resp.Cached = true
			resp.TimingMS = map[string]float64{"total": ms(time.Since(started))}
			writeJSON(w, http.StatusOK, &resp)
			return &resp, len(data), nil
		}
	}
	if caching {
		s.metrics.Cache.WithLabelValues("miss").Inc()
	}
	timing := map[string]float64{}
	t := time.Now()
	img, _, err := yolo.Decode(data)
	if err != nil {
		return nil, len(data), &Error{Status: http.StatusBadRequest, Code: "bad_image", Message: err.Error()}
	}
	timing["decode"] = ms(time.Since(t))
	s.metrics.Stage.WithLabelValues("decode").Observe(time.Since(t).Seconds())
	t = time.Now()
	buf := s.tensors.Get().(*[]float32)
	defer s.tensors.Put(buf) // Submit has returned by then: the batch no longer reads it
	tensor := *buf
	placement := yolo.Preprocess(img, s.model.Imgsz, s.model.Task, tensor)
	timing["preprocess"] = ms(time.Since(t))
	s.metrics.Stage.WithLabelValues("preprocess").Observe(time.Since(t).Seconds())
	ctx, cancel := context.WithTimeout(ctx, s.opts.RequestTimeout)
	defer cancel()
	t = time.Now()
	outs, stats, err := b.Submit(ctx, tensor)
	if err != nil {
		return nil, len(data), s.submitError(err)
	}
	timing["queue"] = ms(stats.Queued)
	timing["inference"] = ms(time.Since(t) - stats.Queued)
	s.metrics.Stage.WithLabelValues("queue").Observe(stats.Queued.Seconds())
	t = time.Now()
	result, err := yolo.Postprocess(s.model, outs, placement, opts)
	if err != nil {
		return nil, len(data), &Error{Status: http.StatusInternalServerError, Code: "internal",
			Message: "post-processing failed: " + err.Error()}
	}
	timing["postprocess"] = ms(time.Since(t))
	s.metrics.Stage.WithLabelValues("postprocess").Observe(time.Since(t).Seconds())
	resp := &PredictResponse{Model: ModelRef{Name: s.opts.Info.Name, Version: s.opts.Info.Version},
		Task: s.model.Task, Image: ImageSize{Width: img.Width, Height: img.Height}, TimingMS: timing}
	if s.model.Task == "classify" {
		resp.Top = result.Top
	} else {
		dets := result.Detections
		if dets == nil {
			dets = []yolo.Detection{}
		}
		resp.Detections = &dets
	}
	if caching {
		if encoded, err := json.Marshal(resp); err == nil {
			s.cache.Set(ctx, key, encoded)
		}
	}
	timing["total"] = ms(time.Since(started))
	writeJSON(w, http.StatusOK, resp)
	return resp, len(data), nil
}

// paramKey is the part of the cache key the answer depends on: classify ignores the detection parameters.
func (s *Server) paramKey(o yolo.Options) string {
	if s.model.Task == "classify" {
		return fmt.Sprintf("k%d", o.TopK)
	}
	return fmt.Sprintf("c%g:i%g:m%d", o.Conf, o.IoU, o.MaxDet)
}

func (s *Server) submitError(err error) *Error {
	switch {
	case errors.Is(err, batcher.ErrOverloaded):
		return &Error{Status: http.StatusServiceUnavailable, Code: "overloaded",
			Message:    "the request queue is full (batcher.max_queue); retry after the given seconds",
			RetryAfter: s.opts.RetryAfter}
	case errors.Is(err, context.DeadlineExceeded):
		return &Error{Status: http.StatusServiceUnavailable, Code: "overloaded",
			Message:    fmt.Sprintf("no answer within limits.request_timeout (%s)", s.opts.RequestTimeout),
			RetryAfter: s.opts.RetryAfter}
	case errors.Is(err, batcher.ErrClosed), errors.Is(err, context.Canceled):
		return &Error{Status: http.StatusServiceUnavailable, Code: "overloaded",
			Message: "the server is shutting down", RetryAfter: s.opts.RetryAfter}
	default:
		return &Error{Status: http.StatusInternalServerError, Code: "internal", Message: "inference failed: " + err.Error()}
	}
}

func (s *Server) modelInfo(w http.ResponseWriter, _ *http.Request) *Error {
	writeJSON(w, http.StatusOK, s.opts.Info)
	return nil
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) *Error {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) *Error {
	state := s.state.Load().(string)
	status := http.StatusOK
	if state != "loaded" {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, map[string]any{"ready": state == "loaded", "model": state, "dependencies": s.deps()})
	return nil
}
