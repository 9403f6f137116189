// Package bench measures what a server does on the machine it runs on: its engine alone and the whole server
// over HTTP, for each engine layout (engine copies x threads) and batch size. `yoloforge-server bench` prints
// the figures and can record the fastest layout; nothing here knows how the engine or the server is built.
package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/yoloforge/yoloforge/serving/gateway/internal/config"
	"github.com/yoloforge/yoloforge/serving/gateway/internal/engine"
)

// ErrNothingAnswered is returned when a measurement got no answer at all in its time.
var ErrNothingAnswered = errors.New("nothing was answered")

// Image is one sample request body.
type Image struct {
	Name        string
	Data        []byte
	ContentType string
}

// Figures are one measurement: images per second and the 99th percentile of a call's latency.
type Figures struct {
	ImagesPerS float64
	P99MS      float64
	Errors     int
}

// Result is one layout's measurements.
type Result struct {
	config.Layout
	Engine Figures // the engine alone, batches of Layout.Batch images on every copy at once
	Server Figures // the whole server: HTTP, decode, preprocess, batching, engine, postprocess
}

// Layouts are the layouts a machine with cpus cores can run: on a CPU, 1, 2, 4, ... copies up to the cores, each
// with its share of them; on a GPU, one or two copies (threads are the GPU's). Each with every batch size.
func Layouts(gpu bool, cpus int, batches []int) []config.Layout {
	var out []config.Layout
	for workers := 1; workers <= max(cpus, 1); workers *= 2 {
		threads := max(cpus/workers, 1)
		if gpu {
			if workers > 2 {
				break
			}
			threads = 0
		}
		for _, b := range batches {
			out = append(out, config.Layout{Workers: workers, Threads: threads, Batch: b})
		}
	}
	return out
}

// Fastest is the result whose whole server answered the most images a second (the engine alone breaks ties,
// then fewer copies: less memory for the same speed).
func Fastest(results []Result) (Result, bool) {
	if len(results) == 0 {
		return Result{}, false
	}
	best := results[0]
	for _, r := range results[1:] {
		if r.Server.ImagesPerS > best.Server.ImagesPerS ||
			(r.Server.ImagesPerS == best.Server.ImagesPerS && r.Engine.ImagesPerS > best.Engine.ImagesPerS) {
			best = r
		}
	}
	return best, true
}

// Percentile is the q-th percentile (0-100) of values, nearest rank; 0 for none.
func Percentile(values []float64, q float64) float64 {
	if len(values) == 0 {
		return 0
	}
	sorted := slices.Clone(values)
	slices.Sort(sorted)
	rank := int(q/100*float64(len(sorted))+0.5) - 1
	return sorted[min(max(rank, 0), len(sorted)-1)]
}

// Engine runs batches of n images (input) on e from concurrent callers, as many as it has copies, for d.
func Engine(ctx context.Context, e engine.Engine, concurrent int, input []float32, n int, d time.Duration) (Figures, error) {
	return run(ctx, concurrent, d, n, func(ctx context.Context, _ int) error {
		_, err := e.Infer(ctx, input, n)
		return err
	})
}

// Server posts the images, in turn, to url from clients concurrent clients for d; one image per call.
func Server(ctx context.Context, client *http.Client, url string, images []Image, clients int, d time.Duration) (Figures, error) {
	if len(images) == 0 {
		return Figures{}, errors.New("no images to send")
	}
	return run(ctx, clients, d, 1, func(ctx context.Context, i int) error {
		img := images[i%len(images)]
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(img.Data))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", img.ContentType)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: status %d", img.Name, resp.StatusCode)
		}
		return nil
	})
}

// run calls call from concurrent goroutines until d has passed, each call counting for per images.
func run(ctx context.Context, concurrent int, d time.Duration, per int, call func(context.Context, int) error) (Figures, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var mu sync.Mutex
	var latencies []float64
	var failures []error
	var wg sync.WaitGroup
	started := time.Now()
	for g := range max(concurrent, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; ctx.Err() == nil; i += concurrent {
				t := time.Now()
				err := call(ctx, i)
				ms := float64(time.Since(t).Microseconds()) / 1000
				mu.Lock()
				if err == nil {
					latencies = append(latencies, ms)
				} else if ctx.Err() == nil { // a call cut by the end of the measurement is not a failure
					failures = append(failures, err)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(started).Seconds()
	f := Figures{ImagesPerS: float64(len(latencies)*per) / elapsed, P99MS: Percentile(latencies, 99), Errors: len(failures)}
	if len(latencies) == 0 {
		if len(failures) > 0 {
			return f, fmt.Errorf("%w in %s: %w", ErrNothingAnswered, d, failures[0])
		}
		return f, fmt.Errorf("%w in %s", ErrNothingAnswered, d)
	}
	return f, nil
}
