package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/yoloforge/yoloforge/serving/gateway/internal/api"
	"github.com/yoloforge/yoloforge/serving/gateway/internal/auth"
	"github.com/yoloforge/yoloforge/serving/gateway/internal/bench"
	"github.com/yoloforge/yoloforge/serving/gateway/internal/cache"
	"github.com/yoloforge/yoloforge/serving/gateway/internal/config"
	"github.com/yoloforge/yoloforge/serving/gateway/internal/workers"
	"github.com/yoloforge/yoloforge/serving/gateway/internal/yolo"
)

// benchCmd measures this machine: for each engine layout and batch size the config allows, the engine alone and
// the whole server (HTTP on loopback, no cache, no database, no keys), on the bundle's sample images. -write
// records the layout whose server answered the most images a second in the config file.
func benchCmd(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	path := fs.String("config", defaultConfigPath(), "config file (YOLOFORGE_CONFIG)")
	dir := fs.String("images", "", "a folder of JPEG, PNG or WebP images (default: samples/ beside the config)")
	seconds := fs.Float64("seconds", 3, "how long each measurement runs")
	clients := fs.Int("clients", 16, "concurrent clients of the whole server")
	write := fs.Bool("write", false, "record the fastest layout in the config file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	if *dir == "" {
		*dir = filepath.Join(filepath.Dir(*path), "samples")
	}
	images, err := readImages(*dir)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	cpus := runtime.NumCPU()
	d := time.Duration(*seconds * float64(time.Second))
	fmt.Fprintf(out, "yoloforge-server bench: %s (%s, %d px), %s execution provider, %d cores, %d images from %s, "+
		"%.3g s per measurement\n", cfg.Model.Name, cfg.Model.Task, cfg.Model.Imgsz, cfg.Engine.Provider, cpus,
		len(images), *dir, *seconds)
	fmt.Fprintf(out, "%8s %8s %6s %14s %14s %14s %14s\n", "workers", "threads", "batch", "engine img/s",
		"engine p99 ms", "server img/s", "server p99 ms")
	layouts := bench.Layouts(onGPU(cfg.Engine), cpus, batchSizes(cfg))
	var results []bench.Result
	for i := 0; i < len(layouts); {
		l := layouts[i]
		var same []config.Layout // the layouts of one engine pool: its batch sizes
		for ; i < len(layouts) && layouts[i].Workers == l.Workers && layouts[i].Threads == l.Threads; i++ {
			same = append(same, layouts[i])
		}
		rs, err := measurePool(ctx, cfg, same, images, *clients, d, out)
		if err != nil {
			return err
		}
		results = append(results, rs...)
	}
	best, ok := bench.Fastest(results)
	if !ok {
		return errors.New("bench: nothing was measured")
	}
	fmt.Fprintf(out, "fastest here: workers %d, threads %d, batch %d: %.1f img/s through the server (p99 %.1f ms); "+
		"the engine alone %.1f img/s\n", best.Workers, best.Threads, best.Batch, best.Server.ImagesPerS,
		best.Server.P99MS, best.Engine.ImagesPerS)
	if !*write {
		fmt.Fprintf(out, "run again with -write to keep it in %s\n", *path)
		return nil
	}
	if err := config.WriteLayout(*path, best.Layout); err != nil {
		return err
	}
	fmt.Fprintf(out, "written to %s: engine.workers %d, engine.threads %d, batcher.max_batch_size %d\n", *path,
		best.Workers, best.Threads, best.Batch)
	return nil
}

// measurePool opens the engine copies of one layout and measures it at each of its batch sizes.
func measurePool(ctx context.Context, cfg config.Config, layouts []config.Layout, images []bench.Image, clients int,
	d time.Duration, out io.Writer) ([]bench.Result, error) {
	cfg.Engine.Workers, cfg.Engine.Threads = layouts[0].Workers, layouts[0].Threads
	pool, err := openWorkers(cfg)
	if err != nil {
		return nil, fmt.Errorf("bench: opening %d engine copies of %d threads: %w", cfg.Engine.Workers,
			cfg.Engine.Threads, err)
	}
	defer pool.Close()
	var results []bench.Result
	for _, l := range layouts {
		input, err := batchInput(images, cfg.Model, l.Batch)
		if err != nil {
			return nil, err
		}
		r := bench.Result{Layout: l}
		if r.Engine, err = bench.Engine(ctx, pool, pool.Size(), input, l.Batch, d); err != nil {
			return nil, fmt.Errorf("bench: the engine, layout %+v: %w", l, err)
		}
		cfg.Batcher.MaxBatchSize = l.Batch
		if r.Server, err = measureServer(ctx, cfg, pool, images, clients, d); err != nil {
			return nil, fmt.Errorf("bench: the server, layout %+v: %w", l, err)
		}
		fmt.Fprintf(out, "%8d %8d %6d %14.1f %14.1f %14.1f %14.1f\n", l.Workers, l.Threads, l.Batch,
			r.Engine.ImagesPerS, r.Engine.P99MS, r.Server.ImagesPerS, r.Server.P99MS)
		results = append(results, r)
	}
	return results, nil
}

// measureServer runs the server's handler on the pool, on a loopback port, and loads it.
func measureServer(ctx context.Context, cfg config.Config, pool *workers.Pool, images []bench.Image, clients int,
	d time.Duration) (bench.Figures, error) {
	opts := serverOptions(cfg)
	opts.AuthRequired = false
	srv := api.New(opts, api.Deps{Keys: auth.NewKeys(nil), Cache: cache.Disabled{},
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	srv.Attach(pool)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return bench.Figures{}, err
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	defer func() {
		shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = hs.Shutdown(shutdown)
		srv.Close()
	}()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}, Timeout: 60 * time.Second}
	return bench.Server(ctx, client, "http://"+ln.Addr().String()+"/v1/predict", images, clients, d)
}

// batchSizes are the batch sizes the model has files for (a dynamic-batch file: 1 and the batcher's limit).
func batchSizes(cfg config.Config) []int {
	var sizes []int
	for b := range cfg.Model.Files {
		if b == 0 {
			sizes = append(sizes, 1, cfg.Batcher.MaxBatchSize)
		} else {
			sizes = append(sizes, b)
		}
	}
	slices.Sort(sizes)
	return slices.Compact(sizes)
}

// batchInput is n of the images, in turn, decoded and pre-processed as the server does, laid out as one batch.
func batchInput(images []bench.Image, m config.Model, n int) ([]float32, error) {
	per := 3 * m.Imgsz * m.Imgsz
	input := make([]float32, n*per)
	for i := range n {
		img := images[i%len(images)]
		frame, _, err := yolo.DecodeFor(img.Data, m.Imgsz, m.Task, nil)
		if err != nil {
			return nil, fmt.Errorf("bench: %s: %w", img.Name, err)
		}
		yolo.PreprocessFrame(frame, m.Imgsz, m.Task, input[i*per:(i+1)*per])
	}
	return input, nil
}

// readImages reads the JPEG, PNG and WebP files of dir.
func readImages(dir string) ([]bench.Image, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("bench needs sample images: %w; give -images DIR (a folder of JPEG or PNG images "+
			"like the ones the server will be sent)", err)
	}
	types := map[string]string{".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp"}
	var images []bench.Image
	for _, e := range entries {
		contentType, ok := types[strings.ToLower(filepath.Ext(e.Name()))]
		if !ok || e.IsDir() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		images = append(images, bench.Image{Name: e.Name(), Data: data, ContentType: contentType})
	}
	if len(images) == 0 {
		return nil, fmt.Errorf("bench: no JPEG, PNG or WebP image in %s; give -images DIR", dir)
	}
	return images, nil
}
