package engine

import (
	"slices"
	"testing"
	"time"
)

func planner(costs map[int]time.Duration) *ORT {
	e := &ORT{sessions: map[int]*session{}}
	for size, cost := range costs {
		e.sessions[size] = &session{batch: size, cost: cost}
		e.sizes = append(e.sizes, size)
	}
	slices.Sort(e.sizes)
	return e
}

func TestOnACPUAShortBatchRunsAsSingleImagesNotPadded(t *testing.T) {
	cpu := planner(map[int]time.Duration{1: 14 * time.Millisecond, 8: 104 * time.Millisecond})
	if got := cpu.plan(4); !slices.Equal(got, []int{1, 1, 1, 1}) {
		t.Fatalf("plan(4) = %v", got)
	}
	if got := cpu.plan(8); !slices.Equal(got, []int{8}) {
		t.Fatalf("plan(8) = %v", got)
	}
	if got := cpu.plan(10); !slices.Equal(got, []int{1, 1, 8}) && !slices.Equal(got, []int{8, 1, 1}) {
		t.Fatalf("plan(10) = %v", got)
	}
}

func TestOnAGPUAShortBatchRunsPadded(t *testing.T) {
	gpu := planner(map[int]time.Duration{1: 2 * time.Millisecond, 8: 4 * time.Millisecond})
	if got := gpu.plan(4); !slices.Equal(got, []int{8}) {
		t.Fatalf("plan(4) = %v", got)
	}
	if got := gpu.plan(1); !slices.Equal(got, []int{1}) {
		t.Fatalf("plan(1) = %v", got)
	}
}

func TestEveryPlanCoversTheImages(t *testing.T) {
	e := planner(map[int]time.Duration{1: 5 * time.Millisecond, 4: 12 * time.Millisecond, 8: 30 * time.Millisecond})
	for n := 1; n <= 20; n++ {
		sum := 0
		for _, s := range e.plan(n) {
			sum += s
		}
		if sum < n || sum >= n+8 {
			t.Fatalf("plan(%d) covers %d images", n, sum)
		}
	}
}
