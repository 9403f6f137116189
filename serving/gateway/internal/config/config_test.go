package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "m.onnx"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

const valid = `
ort_library: lib/libonnxruntime.so
model: {name: m, version: abc, task: detect, imgsz: 320, names: [a, b], files: {1: m.onnx}}
batcher: {max_batch_size: 4, batch_wait: 2ms}
`

func noEnv(string) (string, bool) { return "", false }

func TestValidConfigFillsDefaultsAndResolvesPaths(t *testing.T) {
	path := writeConfig(t, valid)
	cfg, err := Load(path, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Batcher.BatchWait.Duration != 2*time.Millisecond || cfg.Batcher.MaxQueue != 64 || cfg.Listen != ":8080" {
		t.Fatalf("defaults not applied: %+v", cfg.Batcher)
	}
	if cfg.Model.Files[1] != filepath.Join(filepath.Dir(path), "m.onnx") {
		t.Fatalf("model path not resolved: %s", cfg.Model.Files[1])
	}
}

func TestEnvironmentOverridesTheFile(t *testing.T) {
	env := map[string]string{"YOLOFORGE_REDIS_ADDR": "cache:6379", "YOLOFORGE_MAX_BATCH_SIZE": "16",
		"YOLOFORGE_API_KEYS": " k1, k2 ,", "YOLOFORGE_POSTGRES_ENABLED": "false", "YOLOFORGE_BATCH_WAIT": "0.01"}
	cfg, err := Load(writeConfig(t, valid), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Redis.Addr != "cache:6379" || cfg.Batcher.MaxBatchSize != 16 || cfg.Postgres.Enabled ||
		len(cfg.Auth.Keys) != 2 || cfg.Batcher.BatchWait.Duration != 10*time.Millisecond {
		t.Fatalf("overrides not applied: %+v", cfg)
	}
}

func TestEveryMistakeIsNamed(t *testing.T) {
	_, err := Load(writeConfig(t, `
model: {task: track, imgsz: 8, files: {1: missing.onnx}}
engine: {provider: rocm}
streams: {url: "streams:8100"}
`), noEnv)
	if err == nil {
		t.Fatal("want errors")
	}
	for _, field := range []string{"model.task", "model.imgsz", "model.names", "model.files", "engine.provider", "ort_library",
		"streams.url"} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("error does not name %s:\n%v", field, err)
		}
	}
}

func TestUnknownFieldIsRefused(t *testing.T) {
	if _, err := Load(writeConfig(t, valid+"batcher_size: 3\n"), noEnv); err == nil || !strings.Contains(err.Error(), "batcher_size") {
		t.Fatalf("err = %v", err)
	}
}

func TestBadEnvironmentValueIsNamed(t *testing.T) {
	_, err := Load(writeConfig(t, valid), func(k string) (string, bool) {
		if k == "YOLOFORGE_MAX_QUEUE" {
			return "lots", true
		}
		return "", false
	})
	if err == nil || !strings.Contains(err.Error(), "YOLOFORGE_MAX_QUEUE") {
		t.Fatalf("err = %v", err)
	}
}

func TestEveryListedOverrideChangesTheConfig(t *testing.T) {
	path := writeConfig(t, valid)
	base, err := Load(path, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	values := map[string]string{"YOLOFORGE_LISTEN": ":9999", "YOLOFORGE_ORT_LIBRARY": "/x/libonnxruntime.so",
		"YOLOFORGE_API_KEYS": "k1,k2", "YOLOFORGE_AUTH_REQUIRED": "false", "YOLOFORGE_REDIS_ADDR": "r:1",
		"YOLOFORGE_REDIS_ENABLED": "false", "YOLOFORGE_CACHE_TTL": "5m", "YOLOFORGE_POSTGRES_DSN": "postgres://x",
		"YOLOFORGE_POSTGRES_ENABLED": "false", "YOLOFORGE_ENGINE_PROVIDER": "openvino", "YOLOFORGE_ENGINE_THREADS": "3",
		"YOLOFORGE_ENGINE_WORKERS": "2", "YOLOFORGE_ENGINE_SPIN": "true", "YOLOFORGE_MAX_BATCH_SIZE": "16",
		"YOLOFORGE_BATCH_WAIT": "9ms", "YOLOFORGE_MAX_QUEUE": "7", "YOLOFORGE_MAX_BODY_MB": "3",
		"YOLOFORGE_REQUEST_TIMEOUT": "7s", "YOLOFORGE_LOG_LEVEL": "debug"}
	for _, name := range Overrides {
		value, ok := values[name]
		if !ok {
			t.Fatalf("%s is listed but this test has no value for it", name)
		}
		cfg, err := Load(path, func(k string) (string, bool) {
			if k == name {
				return value, true
			}
			return "", false
		})
		if err != nil {
			t.Fatalf("%s=%s: %v", name, value, err)
		}
		if reflect.DeepEqual(cfg, base) {
			t.Errorf("%s=%s is listed as an override but changes nothing", name, value)
		}
	}
}
