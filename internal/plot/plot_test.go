package plot

import (
	"encoding/xml"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestYTicks(t *testing.T) {
	for _, c := range []struct {
		max  float64
		unit Unit
		want []float64
	}{
		{0, Count, []float64{0, 1}},
		{1, Count, []float64{0, 1}},
		{3, Count, []float64{0, 1, 2, 3}},
		{7, Count, []float64{0, 2, 4, 6, 8}},
		{10, Count, []float64{0, 5, 10}},
		{95, Count, []float64{0, 50, 100}},
		{1234, Count, []float64{0, 500, 1000, 1500}},
		{math.NaN(), Count, []float64{0, 1}},
		{42, Percent, []float64{0, 25, 50, 75, 100}},
		{3 << 20, Bytes, []float64{0, 1 << 20, 2 << 20, 3 << 20}},
		{1500, Bytes, []float64{0, 512, 1024, 1536}},
		{100, Bytes, []float64{0, 50, 100}},
	} {
		if got := yTicks(c.max, c.unit); !slices.Equal(got, c.want) {
			t.Errorf("yTicks(%v, %v) = %v, want %v", c.max, c.unit, got, c.want)
		}
	}
}

func TestXTicks(t *testing.T) {
	labels := func(n int) []string { return make([]string, n) }
	for _, c := range []struct {
		chart Chart
		want  []int
	}{
		{Chart{}, nil},
		{Chart{Labels: labels(1)}, []int{0}},
		{Chart{Labels: labels(5)}, []int{0, 1, 2, 3, 4}},
		{Chart{Labels: labels(26)}, []int{1, 5, 9, 13, 17, 21, 25}}, // the newest is labelled
		{Chart{Labels: labels(168)}, []int{20, 41, 62, 83, 104, 125, 146, 167}},
		{Chart{Labels: labels(10), Ticks: []int{-1, 3, 9, 10}}, []int{3, 9}},
		// Hour labels ("12-02 15:00") leave room for seven: one a day, the newest hour's.
		{Chart{Labels: slices.Repeat([]string{"12-02 15:00"}, 168)}, []int{23, 47, 71, 95, 119, 143, 167}},
	} {
		if got := xTicks(c.chart); !slices.Equal(got, c.want) {
			t.Errorf("xTicks(%d labels, ticks %v) = %v, want %v", len(c.chart.Labels), c.chart.Ticks, got, c.want)
		}
	}
}

func TestFormat(t *testing.T) {
	for _, c := range []struct {
		v     float64
		u     Unit
		short bool
		want  string
	}{
		{0, Count, true, "0"}, {999, Count, true, "999"}, {1500, Count, true, "1.5k"}, {2e6, Count, true, "2M"},
		{1500, Count, false, "1500"}, {2.5, Count, false, "2.5"},
		{0, Bytes, false, "0 B"}, {1023, Bytes, false, "1023 B"}, {1536, Bytes, false, "1.5 KiB"}, {5 << 30, Bytes, true, "5 GiB"},
		{50, Percent, true, "50%"}, {33.33, Percent, false, "33.3%"}, {100, Percent, false, "100%"},
	} {
		if got := format(c.v, c.u, c.short); got != c.want {
			t.Errorf("format(%v, %v, %v) = %q, want %q", c.v, c.u, c.short, got, c.want)
		}
	}
}

func TestSummary(t *testing.T) {
	for _, c := range []struct {
		chart Chart
		want  string
	}{
		{Chart{}, "No data."},
		{Chart{Labels: []string{"a", "b"}, Series: []Series{{"x", []float64{0, 0}}}}, "a to b: no data."},
		{Chart{Labels: []string{"W1", "W2"}, Kind: Stacked, Series: []Series{{"new", []float64{1, 2}}, {"old", []float64{5, 1}}}},
			"W1 to W2, 2 series; highest total 6 at W1."},
		{Chart{Labels: []string{"h1", "h2", "h3"}, Kind: Lines, Unit: Bytes, Series: []Series{{"eu", []float64{math.NaN(), 2048, 1}}, {"us", []float64{1, math.NaN(), 4096}}}},
			"h1 to h3, 2 series; highest 4 KiB at h3."},
		{Chart{Labels: []string{"d1", "d2"}, Kind: Lines, Unit: Percent, Series: []Series{{"regions", []float64{math.NaN(), math.NaN()}}}}, "d1 to d2: no data."},
	} {
		if got := Summary(c.chart); got != c.want {
			t.Errorf("Summary = %q, want %q", got, c.want)
		}
	}
}

// parse checks that a figure is well-formed markup and returns its elements by name.
func parse(t *testing.T, h string) map[string][]xml.StartElement {
	t.Helper()
	out := map[string][]xml.StartElement{}
	d := xml.NewDecoder(strings.NewReader(h))
	for {
		tok, err := d.Token()
		if err != nil {
			if err.Error() == "EOF" {
				return out
			}
			t.Fatalf("figure is not well-formed: %v\n%s", err, h)
		}
		if se, ok := tok.(xml.StartElement); ok {
			out[se.Name.Local] = append(out[se.Name.Local], se)
		}
	}
}

func attr(se xml.StartElement, name string) string {
	for _, a := range se.Attr {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

func TestStackedFigure(t *testing.T) {
	c := Chart{ID: "countme-f", Title: `Weekly countme of "f<41>"`, Kind: Stacked, LabelName: "Week",
		Labels: []string{"2026-W47", "2026-W48", "2026-W49"},
		Series: []Series{{"first week", []float64{2, 0, 1}}, {"older", []float64{2, math.NaN(), 3}}}}
	h := string(Figure(c))
	el := parse(t, h)
	// A bar piece per non-zero value, each filled with its series' pattern; heights add up
	// to the stack: 4 and 4 are the full axis (ticks 0..4), 0 draws nothing.
	rects := el["rect"]
	var bars []xml.StartElement
	for _, r := range rects {
		if strings.HasPrefix(attr(r, "fill"), "url(#countme-f-p") && attr(r, "stroke") == "#fff" {
			bars = append(bars, r)
		}
	}
	if len(bars) != 4 {
		t.Fatalf("%d bar pieces, want 4:\n%s", len(bars), h)
	}
	height := func(r xml.StartElement) float64 { v, _ := strconv.ParseFloat(attr(r, "height"), 64); return v }
	if got := height(bars[0]) + height(bars[1]); math.Abs(got-plotH) > 0.2 {
		t.Errorf("the highest stack is %v high, want the plot's %v", got, plotH)
	}
	if math.Abs(height(bars[2])-plotH/4) > 0.2 || math.Abs(height(bars[3])-plotH*3/4) > 0.2 {
		t.Errorf("third stack: %v + %v, want %v + %v", height(bars[2]), height(bars[3]), plotH/4, plotH*3/4)
	}
	if len(el["pattern"]) != 2 || attr(el["pattern"][0], "id") != "countme-f-p0" {
		t.Errorf("patterns %v", el["pattern"])
	}
	// The text alternative: every value, a dash for none, the totals; the title escaped.
	for _, want := range []string{"<th scope=\"row\">2026-W48</th><td>0</td><td>–</td><td>0</td>", "<td>1</td><td>3</td><td>4</td>",
		"Weekly countme of &#34;f&lt;41&gt;&#34;", "<th scope=\"col\">Week</th>", "> older</li>"} {
		if !strings.Contains(h, want) {
			t.Errorf("figure lacks %q:\n%s", want, h)
		}
	}
	if strings.Contains(h, "<41>") {
		t.Error("the title is not escaped")
	}
}

func TestLinesFigure(t *testing.T) {
	labels := make([]string, 10)
	for i := range labels {
		labels[i] = fmt.Sprintf("h%d", i)
	}
	nan := math.NaN()
	c := Chart{ID: "req", Title: "Requests", Kind: Lines, Labels: labels, Series: []Series{
		{"eu-central-1", []float64{1, 2, 3, nan, nan, 5, 6, 7, 8, 9}},         // a gap: two lines
		{"origin", []float64{nan, nan, nan, nan, nan, nan, nan, nan, nan, 4}}, // one point
		{"us-east-1", nil}, // nothing at all
	}}
	h := string(Figure(c))
	el := parse(t, h)
	lines := el["polyline"]
	if len(lines) != 3 {
		t.Fatalf("%d polylines, want 3 (two for the gap, one for the lone point):\n%s", len(lines), h)
	}
	if n := len(strings.Fields(attr(lines[0], "points"))); n != 3 {
		t.Errorf("first piece has %d points, want 3", n)
	}
	if attr(lines[0], "stroke-dasharray") != "" || attr(lines[2], "stroke-dasharray") != dashes[1] {
		t.Errorf("dashes %q %q: each series its own", attr(lines[0], "stroke-dasharray"), attr(lines[2], "stroke-dasharray"))
	}
	// The largest value (9) reaches the top tick (10): no point above the plot.
	re := regexp.MustCompile(`,(-?[0-9.]+)`)
	for _, l := range lines {
		for _, m := range re.FindAllStringSubmatch(attr(l, "points"), -1) {
			if y, _ := strconv.ParseFloat(m[1], 64); y < above-0.1 || y > above+plotH+0.1 {
				t.Errorf("point at y=%v outside the plot", y)
			}
		}
	}
	if !strings.Contains(h, "<tr><th scope=\"row\">h3</th><td>–</td><td>–</td><td>–</td></tr>") {
		t.Errorf("the table's gap row is wrong:\n%s", h)
	}
}

// TestFiguresTidy: a page of figures is clean for tidy, the HTML checker the pages are
// held to (real tidy: it must be installed).
func TestFiguresTidy(t *testing.T) {
	tidy, err := exec.LookPath("tidy")
	if err != nil {
		t.Fatal("tidy is missing: install it with: apt-get install -y tidy (or run ./.ci/deps)")
	}
	labels := []string{"2026-W48", "2026-W49"}
	var body strings.Builder
	body.WriteString("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>plots</title></head><body><main>\n")
	for i, k := range []Kind{Stacked, Lines} {
		for j, u := range []Unit{Count, Bytes, Percent} {
			body.WriteString(string(Figure(Chart{ID: fmt.Sprintf("f%d%d", i, j), Title: "A & B", Kind: k, Unit: u, Labels: labels,
				Series: []Series{{"a", []float64{1, 2}}, {"b <c>", []float64{math.NaN(), 3}}}})))
		}
	}
	body.WriteString("</main></body></html>\n")
	page := filepath.Join(t.TempDir(), "plots.html")
	if err := os.WriteFile(page, []byte(body.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(tidy, "-errors", "-q", page).CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Errorf("tidy: %v\n%s", err, out)
	}
}

// FuzzFigure: any title, labels, names and values give well-formed markup in which none
// of them escapes its text or attribute (no element is made from them).
func FuzzFigure(f *testing.F) {
	f.Add("Requests", "2026-W49", "eu-central-1", 3.0, 1.5, false)
	f.Add(`"><script>x</script>`, "<b>", "a&b'\"", math.NaN(), math.Inf(1), true)
	f.Add("\ufffe\u0085", "\uffff", "\x00\xff", 1e308, 1.7e308, false) // noncharacters, C1, overflowing sums
	f.Add("t", "l", "n", 1e308, 1.7e308, true)
	f.Fuzz(func(t *testing.T, title, label, name string, v1, v2 float64, lines bool) {
		c := Chart{ID: "f", Title: title, Labels: []string{label, label + "2"}, Unit: Unit(int(math.Abs(v1)) % 3),
			Series: []Series{{name, []float64{v1, v2}}, {name + "x", []float64{v2, v1}}}}
		if lines {
			c.Kind = Lines
		}
		h := string(Figure(c))
		if !utf8.ValidString(h) {
			t.Fatalf("the figure is not UTF-8:\n%q", h)
		}
		el := parse(t, h)
		for _, elements := range el {
			for _, e := range elements {
				for _, a := range e.Attr {
					if a.Name.Local != "aria-label" && a.Name.Local != "id" && (strings.Contains(a.Value, "NaN") || strings.Contains(a.Value, "Inf")) {
						t.Fatalf("attribute %s=%q of <%s>", a.Name.Local, a.Value, e.Name.Local)
					}
				}
			}
		}
		for name := range el {
			if !slices.Contains([]string{"figure", "figcaption", "svg", "title", "desc", "defs", "pattern", "rect", "path",
				"circle", "text", "polyline", "ul", "li", "details", "summary", "div", "table", "thead", "tbody", "tr", "th", "td"}, name) {
				t.Fatalf("element %q in the figure:\n%s", name, h)
			}
		}
	})
}
