package yolo

import "math"

// Moore-neighbour directions, clockwise in image coordinates (y down), starting west.
var ring = [8][2]int{{-1, 0}, {-1, -1}, {0, -1}, {1, -1}, {1, 0}, {1, 1}, {0, 1}, {-1, 1}}

func ringIndex(dx, dy int) int {
	for i, d := range ring {
		if d[0] == dx && d[1] == dy {
			return i
		}
	}
	return 0
}

// Polygon is a mask's outline as the answer carries it: the outer border, with straight runs reduced to their
// ends (cv2.CHAIN_APPROX_SIMPLE), of the 8-connected region whose border encloses the largest area (the area
// cv2.contourArea gives; on a tie, the region met first in raster order). Not the border with the most points:
// a small ragged fragment of a weak model's mask can have more points than its main region.
func Polygon(mask []bool, w, h int) [][2]float64 {
	label := make([]int32, len(mask))
	var best [][2]float64
	bestArea := -1.0
	next := int32(0)
	queue := make([]int, 0, 64)
	for start, on := range mask {
		if !on || label[start] != 0 {
			continue
		}
		next++
		label[start] = next
		queue = append(queue[:0], start)
		for len(queue) > 0 { // flood the region so its other pixels do not start a border of their own
			i := queue[len(queue)-1]
			queue = queue[:len(queue)-1]
			x, y := i%w, i/w
			for _, d := range ring {
				nx, ny := x+d[0], y+d[1]
				if nx < 0 || ny < 0 || nx >= w || ny >= h {
					continue
				}
				if j := ny*w + nx; mask[j] && label[j] == 0 {
					label[j] = next
					queue = append(queue, j)
				}
			}
		}
		border := traceBorder(mask, w, h, start%w, start/w)
		if area := enclosedArea(border); area > bestArea {
			best, bestArea = border, area
		}
	}
	return best
}

// enclosedArea is the shoelace area of a closed polygon (points dropped from straight runs change nothing).
func enclosedArea(p [][2]float64) float64 {
	sum := 0.0
	for i := range p {
		j := (i + 1) % len(p)
		sum += p[i][0]*p[j][1] - p[j][0]*p[i][1]
	}
	return math.Abs(sum) / 2
}

// traceBorder follows the outer border clockwise from a region's first pixel in raster order (Moore tracing
// with Jacob's stopping rule) and keeps only the points where the direction changes.
func traceBorder(mask []bool, w, h, sx, sy int) [][2]float64 {
	on := func(x, y int) bool { return x >= 0 && y >= 0 && x < w && y < h && mask[y*w+x] }
	type step struct{ x, y, dir int }
	move := func(x, y, back int) (step, bool) {
		for k := 1; k <= 8; k++ {
			d := (back + k) % 8
			if nx, ny := x+ring[d][0], y+ring[d][1]; on(nx, ny) {
				prev := ring[(d+7)%8]
				return step{nx, ny, ringIndex(prev[0]-ring[d][0], prev[1]-ring[d][1])}, true
			}
		}
		return step{}, false
	}
	first, ok := move(sx, sy, 0) // entered from the west: the row above and the pixel before are background
	if !ok {
		return [][2]float64{{float64(sx), float64(sy)}}
	}
	points := [][2]int{{sx, sy}}
	cur := first
	for limit := 4 * w * h; limit > 0; limit-- {
		if cur.x == sx && cur.y == sy {
			if n, _ := move(cur.x, cur.y, cur.dir); n == first {
				break
			}
		}
		points = append(points, [2]int{cur.x, cur.y})
		cur, _ = move(cur.x, cur.y, cur.dir)
	}
	return simplify(points)
}

func simplify(points [][2]int) [][2]float64 {
	n := len(points)
	out := make([][2]float64, 0, n)
	for i, p := range points {
		prev, next := points[(i+n-1)%n], points[(i+1)%n]
		if n > 2 && p[0]-prev[0] == next[0]-p[0] && p[1]-prev[1] == next[1]-p[1] {
			continue // the middle of a straight run
		}
		out = append(out, [2]float64{float64(p[0]), float64(p[1])})
	}
	return out
}
