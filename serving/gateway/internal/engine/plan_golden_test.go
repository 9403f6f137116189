package engine

import (
	"encoding/json"
	"os"
	"strconv"
	"testing"
	"time"
)

// testdata/plan_golden.json is engines.predictor.plan_batches's plan for random call costs, written by
// scripts/make_gateway_golden.py (tests/test_golden.py keeps it current). Plans of equal cost may differ in
// order or, on a tie, in sizes: the test compares what a plan costs and that it covers every image.
func TestPlanCostsWhatPythonsPlanCosts(t *testing.T) {
	data, err := os.ReadFile("testdata/plan_golden.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases []struct {
		CostUS  map[string]int64 `json:"cost_us"`
		N       int
		Plan    []int
		TotalUS int64 `json:"total_us"`
	}
	if err := json.Unmarshal(data, &cases); err != nil {
		t.Fatal(err)
	}
	for i, c := range cases {
		costs := map[int]time.Duration{}
		for size, us := range c.CostUS {
			s, err := strconv.Atoi(size)
			if err != nil {
				t.Fatal(err)
			}
			costs[s] = time.Duration(us) * time.Microsecond
		}
		plan := planner(costs).plan(c.N)
		var total time.Duration
		covered := 0
		for _, size := range plan {
			total += costs[size]
			covered += size
		}
		if total != time.Duration(c.TotalUS)*time.Microsecond || covered < c.N {
			t.Errorf("case %d (n %d, costs %v): plan %v costs %v for %d images; Python's %v costs %dus", i, c.N,
				c.CostUS, plan, total, covered, c.Plan, c.TotalUS)
		}
	}
}
