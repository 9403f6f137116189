// Package pipeline turns one encoded image into the model's answer: decode, preprocess, batch (the dynamic
// batcher in front of the engine), postprocess. It knows nothing of HTTP: package api calls it.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/yoloforge/yoloforge/serving/gateway/internal/batcher"
	"github.com/yoloforge/yoloforge/serving/gateway/internal/engine"
	"github.com/yoloforge/yoloforge/serving/gateway/internal/yolo"
)

// ErrNotLoaded is returned while the engine is not attached (loading, or failed to load).
var ErrNotLoaded = errors.New("the model is not loaded")

// BadImageError is a decode failure: the request's fault, not the server's. Its message is the decoder's.
type BadImageError struct{ Err error }

func (e *BadImageError) Error() string { return e.Err.Error() }
func (e *BadImageError) Unwrap() error { return e.Err }

// ErrPostprocess wraps a failure to read the engine's outputs.
var ErrPostprocess = errors.New("post-processing failed")

// Observer receives how long each stage took: decode, preprocess, queue, inference, postprocess.
type Observer func(stage string, d time.Duration)

// Answer is one image's result and where its time went.
type Answer struct {
	Result yolo.Result
	Width  int
	Height int
	// TimingMS: decode, preprocess, queue, inference, postprocess (milliseconds)
	TimingMS map[string]float64
}

// Pipeline is safe for concurrent use; the engine is attached once it is loaded.
type Pipeline struct {
	model   yolo.Model
	opts    batcher.Options
	observe Observer
	batch   atomic.Pointer[batcher.Batcher[[]float32, []yolo.Output]]
	// input tensors are large (1.2 MB at 320 px): reused, so the garbage collector does not take the CPU the
	// engine needs
	tensors      sync.Pool
	batchBuffers sync.Pool
	pixels       sync.Pool // decoded JPEG pixels (2.7 MB for a 1280x720 frame)
}

// New builds a pipeline for the model; observe may be nil.
func New(model yolo.Model, opts batcher.Options, observe Observer) *Pipeline {
	if observe == nil {
		observe = func(string, time.Duration) {}
	}
	p := &Pipeline{model: model, opts: opts, observe: observe}
	per := 3 * model.Imgsz * model.Imgsz
	p.tensors.New = func() any { t := make([]float32, per); return &t }
	p.batchBuffers.New = func() any { t := make([]float32, 0); return &t }
	p.pixels.New = func() any { return new([]byte) }
	return p
}

// Attach starts batching onto a loaded engine, running up to concurrent batches at once (an engine of several
// workers takes one batch per worker).
func (p *Pipeline) Attach(e engine.Engine, concurrent int) {
	per := 3 * p.model.Imgsz * p.model.Imgsz
	run := func(ctx context.Context, items [][]float32) ([][]yolo.Output, error) {
		input := items[0]
		if len(items) > 1 { // one contiguous batch; a lone image goes as it is
			buf := p.batchBuffers.Get().(*[]float32)
			defer p.batchBuffers.Put(buf)
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
		p.observe("inference", time.Since(started))
		return outs, err
	}
	opts := p.opts
	opts.Workers = max(opts.Workers, concurrent)
	p.batch.Store(batcher.New(run, opts))
}

// Loaded says whether an engine is attached.
func (p *Pipeline) Loaded() bool { return p.batch.Load() != nil }

// QueueLen is the number of images waiting for a batch.
func (p *Pipeline) QueueLen() int {
	if b := p.batch.Load(); b != nil {
		return b.Len()
	}
	return 0
}

// Close drains the batcher (after the HTTP server has stopped taking requests).
func (p *Pipeline) Close() {
	if b := p.batch.Load(); b != nil {
		b.Close()
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// Run answers one encoded image. Errors: ErrNotLoaded, *BadImageError, ErrPostprocess (wrapped), the
// batcher's sentinel errors and the context's.
func (p *Pipeline) Run(ctx context.Context, data []byte, opts yolo.Options) (Answer, error) {
	b := p.batch.Load()
	if b == nil {
		return Answer{}, ErrNotLoaded
	}
	timing := map[string]float64{}
	stage := func(name string, started time.Time) {
		d := time.Since(started)
		timing[name] = ms(d)
		p.observe(name, d)
	}
	t := time.Now()
	pixels := p.pixels.Get().(*[]byte)
	frame, _, err := yolo.DecodeFor(data, p.model.Imgsz, p.model.Task, *pixels)
	if err != nil {
		p.pixels.Put(pixels)
		return Answer{}, &BadImageError{Err: err}
	}
	stage("decode", t)
	t = time.Now()
	buf := p.tensors.Get().(*[]float32)
	defer p.tensors.Put(buf) // Submit has returned by then: the batch no longer reads it
	tensor := *buf
	placement := yolo.PreprocessFrame(frame, p.model.Imgsz, p.model.Task, tensor)
	if cap(frame.Pixels.Pix) > cap(*pixels) { // a JPEG's pixels (a PNG's are the decoder's own): kept for the next
		*pixels = frame.Pixels.Pix[:0]
	}
	p.pixels.Put(pixels) // the pixels are in the tensor now
	stage("preprocess", t)
	t = time.Now()
	outs, stats, err := b.Submit(ctx, tensor)
	if err != nil {
		return Answer{}, err
	}
	timing["queue"] = ms(stats.Queued)
	timing["inference"] = ms(time.Since(t) - stats.Queued)
	p.observe("queue", stats.Queued)
	t = time.Now()
	result, err := yolo.Postprocess(p.model, outs, placement, opts)
	if err != nil {
		return Answer{}, fmt.Errorf("%w: %w", ErrPostprocess, err)
	}
	stage("postprocess", t)
	return Answer{Result: result, Width: frame.Width, Height: frame.Height, TimingMS: timing}, nil
}
