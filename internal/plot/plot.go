// Package plot draws the dashboard's plots as inline SVG on the server: no script, no
// external asset, so they work air-gapped and under the pages' Content-Security-Policy.
// Every series differs by more than colour (bar fills are patterns, lines have their own
// dashes and marker shapes), and every figure carries its values as a table, its text
// alternative.
package plot

import (
	"fmt"
	"html"
	"html/template"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Unit is how a chart's values are written on its axis and in its table.
type Unit int

const (
	Count   Unit = iota // requests: 950, 1.2k, 3.4M
	Bytes               // sizes: 512 B, 1.5 MiB
	Percent             // shares: 0..100, "42%"
)

// Kind is how the series are drawn.
type Kind int

const (
	Stacked Kind = iota // one bar per label, the series stacked in order
	Lines               // one line per series
)

// Series is one named row of values, one per label; math.NaN() is no value (a gap in a
// line, nothing in a bar).
type Series struct {
	Name   string
	Values []float64
}

// Chart is what a figure shows.
type Chart struct {
	ID     string   // unique in the page: the figure's and its patterns' ids derive from it
	Title  string   // what it shows: the caption and the SVG's accessible name
	Labels []string // the x positions, oldest first
	Series []Series
	Unit   Unit
	Kind   Kind
	// LabelName heads the table's first column ("Week", "Hour (UTC)"); "" is "When".
	LabelName string
	// Ticks are the label indices written under the x axis; nil spaces about eight evenly,
	// ending at the newest.
	Ticks []int
}

// The drawing's geometry, in SVG user units (the SVG scales to its container's width).
const (
	width, height            = 720.0, 230.0
	left, right, above, foot = 60.0, 20.0, 10.0, 34.0
	plotW, plotH             = width - left - right, height - above - foot
)

// palette is Okabe and Ito's, told apart by people with colour-vision deficiencies, with
// their black and yellow replaced by a grey and a brown that keep 3:1 on white and on the
// dark scheme's background; the patterns, dashes and markers tell series apart without any
// colour at all.
var palette = []string{"#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#808080", "#a6761d"}

var dashes = []string{"", "8 4", "2 3", "10 3 2 3", "4 4"}

// Figure returns the chart as a <figure>: caption, inline SVG, legend, and a <details>
// holding every value as a table.
func Figure(c Chart) template.HTML {
	var b strings.Builder
	id := esc(c.ID)
	n := len(c.Labels)
	ymax := scaleMax(c)
	ticks := yTicks(ymax, c.Unit)
	ymax = ticks[len(ticks)-1]
	fmt.Fprintf(&b, `<figure class="plot" id="%s"><figcaption>%s</figcaption>`+"\n", id, esc(c.Title))
	fmt.Fprintf(&b, `<svg class="plot" viewBox="0 0 %s %s" width="%s" height="%s" style="width:100%%;max-width:%spx;height:auto;font:11px system-ui,sans-serif" role="img" aria-label="%s" xmlns="http://www.w3.org/2000/svg"><title>%s</title><desc>%s</desc>`+"\n",
		num(width), num(height), num(width), num(height), num(width), esc(c.Title), esc(c.Title), esc(Summary(c)))
	if c.Kind == Stacked {
		b.WriteString("<defs>")
		for i := range c.Series {
			writePattern(&b, id, i)
		}
		b.WriteString("</defs>\n")
	}
	// The y axis: grid lines and their values.
	for _, v := range ticks {
		y := yAt(v, ymax)
		fmt.Fprintf(&b, `<path class="grid" d="M%s %sH%s" stroke="#8a96a3" stroke-opacity=".35"/><text x="%s" y="%s" text-anchor="end" fill="currentColor">%s</text>`+"\n",
			num(left), num(y), num(width-right), num(left-6), num(y+4), esc(format(v, c.Unit, true)))
	}
	fmt.Fprintf(&b, `<path class="axis" d="M%s %sV%sH%s" fill="none" stroke="currentColor" stroke-opacity=".6"/>`+"\n", num(left), num(above), num(above+plotH), num(width-right))
	for _, i := range xTicks(c) {
		// A label that would run past the drawing's edge ends at it (11px text is about
		// 6.2 units a character).
		x, tx, anchor := xAt(i, n), xAt(i, n), "middle"
		if w := 6.2 * float64(len([]rune(c.Labels[i]))); x+w/2 > width-2 {
			tx, anchor = width-2, "end"
		}
		fmt.Fprintf(&b, `<path class="axis" d="M%s %sv4" stroke="currentColor" stroke-opacity=".6"/><text x="%s" y="%s" text-anchor="%s" fill="currentColor">%s</text>`+"\n",
			num(x), num(above+plotH), num(tx), num(above+plotH+18), anchor, esc(c.Labels[i]))
	}
	switch c.Kind {
	case Stacked:
		writeBars(&b, c, id, ymax)
	case Lines:
		writeLines(&b, c, ymax)
	}
	b.WriteString("</svg>\n")
	writeLegend(&b, c, id)
	writeTable(&b, c)
	b.WriteString("</figure>")
	return template.HTML(b.String())
}

// xAt is the centre of label i's slot.
func xAt(i, n int) float64 { return left + plotW*(float64(i)+0.5)/float64(max(n, 1)) }

// yAt is the height of value v on an axis from 0 to ymax.
func yAt(v, ymax float64) float64 {
	if ymax <= 0 {
		return above + plotH
	}
	return above + plotH - plotH*v/ymax
}

// scaleMax is the largest value the axis must reach: the largest stack or value.
func scaleMax(c Chart) float64 {
	if c.Unit == Percent {
		return 100
	}
	var m float64
	for i := range c.Labels {
		var stack float64
		for _, s := range c.Series {
			v := value(s, i)
			if c.Kind == Stacked {
				stack += v
			} else {
				m = math.Max(m, v)
			}
		}
		m = math.Max(m, stack)
	}
	return m
}

// maxValue bounds the values drawn: sums and ticks of larger ones would overflow to
// infinities (counts and bytes never come near it).
const maxValue = 1e300

// has reports whether series s has a value at label i: NaN is none, and so is an
// infinity or a value beyond maxValue (it has no place on an axis).
func has(s Series, i int) bool {
	return i < len(s.Values) && !math.IsNaN(s.Values[i]) && math.Abs(s.Values[i]) <= maxValue
}

// esc escapes text for the markup; a control character (C0, DEL, C1), a noncharacter
// XML refuses (U+FFFE, U+FFFF) or invalid UTF-8 becomes U+FFFD.
func esc(s string) string {
	return html.EscapeString(strings.Map(func(r rune) rune {
		if (r < 0x20 && r != '\t' && r != '\n') || (r >= 0x7f && r < 0xa0) || r == 0xfffe || r == 0xffff {
			return utf8.RuneError
		}
		return r // invalid UTF-8 arrives as utf8.RuneError already
	}, s))
}

// value is series s at label i, 0 when it has none (or a negative one).
func value(s Series, i int) float64 {
	if !has(s, i) || s.Values[i] < 0 {
		return 0
	}
	return s.Values[i]
}

// yTicks returns the axis values from 0 to at least m in 3..6 round steps: 1, 2 or 5
// times a power of ten (of 1024 for bytes, so that the ticks are 256 KiB, 1 MiB, ...).
func yTicks(m float64, u Unit) []float64 {
	if u == Percent {
		return []float64{0, 25, 50, 75, 100}
	}
	if m <= 0 || math.IsInf(m, 0) || math.IsNaN(m) {
		m = 1
	}
	base := 1.0
	if u == Bytes {
		for base*1024 <= m {
			base *= 1024
		}
	}
	scaled := m / base
	raw := scaled / 4
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, f := range []float64{1, 2, 5, 10} {
		if f*mag >= raw {
			step = f * mag
			break
		}
	}
	if u != Percent && step*base < 1 {
		step = 1 / base // counts are whole: no tick at 0.25 requests
	}
	var out []float64
	for v := 0.0; ; v += step {
		out = append(out, v*base)
		if v >= scaled-1e-9 {
			break
		}
	}
	return out
}

// xTicks returns the label indices written under the axis.
func xTicks(c Chart) []int {
	n := len(c.Labels)
	if c.Ticks != nil {
		out := make([]int, 0, len(c.Ticks))
		for _, i := range c.Ticks {
			if i >= 0 && i < n {
				out = append(out, i)
			}
		}
		return out
	}
	if n == 0 {
		return nil
	}
	// At most eight, fewer when the labels are long: each needs its width and a gap.
	most := 8
	for _, l := range c.Labels {
		most = min(most, max(1, int(plotW/(6.2*float64(len([]rune(l)))+16))))
	}
	every := (n + most - 1) / most
	var out []int
	for i := (n - 1) % every; i < n; i += every {
		out = append(out, i)
	}
	return out
}

// writePattern defines series i's bar fill: its colour with a texture of its own.
func writePattern(b *strings.Builder, id string, i int) {
	col := palette[i%len(palette)]
	fmt.Fprintf(b, `<pattern id="%s-p%d" width="8" height="8" patternUnits="userSpaceOnUse"><rect width="8" height="8" fill="%s"/>`, id, i, col)
	switch i % 5 {
	case 1: // diagonal stripes
		b.WriteString(`<path d="M-2 2l4-4M0 8l8-8M6 10l4-4" stroke="#fff" stroke-width="2"/>`)
	case 2: // dots
		b.WriteString(`<circle cx="4" cy="4" r="1.6" fill="#fff"/>`)
	case 3: // cross-hatch
		b.WriteString(`<path d="M0 4h8M4 0v8" stroke="#fff" stroke-width="1.5"/>`)
	case 4: // the other diagonal
		b.WriteString(`<path d="M-2 6l4 4M0 0l8 8M6 -2l4 4" stroke="#fff" stroke-width="2"/>`)
	}
	b.WriteString("</pattern>")
}

func writeBars(b *strings.Builder, c Chart, id string, ymax float64) {
	n := len(c.Labels)
	slot := plotW / float64(max(n, 1))
	w := math.Max(slot*0.72, 1)
	for i := range c.Labels {
		base := 0.0
		for si, s := range c.Series {
			v := value(s, i)
			if v == 0 {
				continue
			}
			y0, y1 := yAt(base, ymax), yAt(base+v, ymax)
			base += v
			fmt.Fprintf(b, `<rect x="%s" y="%s" width="%s" height="%s" fill="url(#%s-p%d)" stroke="#fff" stroke-width=".5"><title>%s, %s: %s</title></rect>`+"\n",
				num(xAt(i, n)-w/2), num(y1), num(w), num(y0-y1), id, si,
				esc(c.Labels[i]), esc(s.Name), esc(format(v, c.Unit, false)))
		}
	}
}

func writeLines(b *strings.Builder, c Chart, ymax float64) {
	n := len(c.Labels)
	marks := xTicks(c)
	for si, s := range c.Series {
		col, dash := palette[si%len(palette)], dashes[si%len(dashes)]
		attr := fmt.Sprintf(`fill="none" stroke="%s" stroke-width="2"`, col)
		if dash != "" {
			attr += fmt.Sprintf(` stroke-dasharray="%s"`, dash)
		}
		// A gap (NaN) ends a line; the next value starts another.
		var pts []string
		flush := func() {
			if len(pts) == 1 { // a lone point would not show as a line
				pts = append(pts, pts[0])
			}
			if len(pts) > 0 {
				fmt.Fprintf(b, `<polyline points="%s" %s/>`+"\n", strings.Join(pts, " "), attr)
			}
			pts = pts[:0]
		}
		for i := 0; i < n; i++ {
			if !has(s, i) {
				flush()
				continue
			}
			pts = append(pts, num(xAt(i, n))+","+num(yAt(math.Min(value(s, i), ymax), ymax)))
		}
		flush()
		// Marker shapes at the ticked labels tell the lines apart where dashes overlap.
		for _, i := range marks {
			if has(s, i) {
				b.WriteString(marker(si, xAt(i, n), yAt(math.Min(value(s, i), ymax), ymax), col))
			}
		}
	}
}

// marker draws series i's shape centred on x, y.
func marker(i int, x, y float64, col string) string {
	switch i % 5 {
	case 1:
		return fmt.Sprintf(`<rect x="%s" y="%s" width="7" height="7" fill="%s"/>`, num(x-3.5), num(y-3.5), col)
	case 2:
		return fmt.Sprintf(`<path d="M%s %sl4.5 7.5h-9z" fill="%s"/>`, num(x), num(y-4.5), col)
	case 3:
		return fmt.Sprintf(`<path d="M%s %sl4.5 4.5-4.5 4.5-4.5-4.5z" fill="%s"/>`, num(x), num(y-4.5), col)
	case 4:
		return fmt.Sprintf(`<circle cx="%s" cy="%s" r="3.5" fill="#fff" stroke="%s" stroke-width="2"/>`, num(x), num(y), col)
	}
	return fmt.Sprintf(`<circle cx="%s" cy="%s" r="3.5" fill="%s"/>`, num(x), num(y), col)
}

// writeLegend names every series beside a sample of how it is drawn.
func writeLegend(b *strings.Builder, c Chart, id string) {
	// Styled here, so that a page needs no stylesheet for it (the pages allow inline styles).
	b.WriteString(`<ul class="legend" style="list-style:none;padding:0;margin:.25rem 0;display:flex;flex-wrap:wrap;gap:.25rem 1.25rem">`)
	for i, s := range c.Series {
		b.WriteString(`<li><svg width="30" height="14" viewBox="0 0 30 14" style="vertical-align:middle" aria-hidden="true" xmlns="http://www.w3.org/2000/svg">`)
		if c.Kind == Stacked {
			fmt.Fprintf(b, `<rect x="1" y="1" width="28" height="12" fill="url(#%s-p%d)" stroke="currentColor" stroke-width=".5"/>`, id, i)
		} else {
			col, dash := palette[i%len(palette)], dashes[i%len(dashes)]
			if dash != "" {
				dash = ` stroke-dasharray="` + dash + `"`
			}
			fmt.Fprintf(b, `<path d="M0 7H30" stroke="%s" stroke-width="2"%s/>%s`, col, dash, marker(i, 15, 7, col))
		}
		fmt.Fprintf(b, `</svg> %s</li>`, esc(s.Name))
	}
	b.WriteString("</ul>\n")
}

// writeTable writes every value, the figure's text alternative.
func writeTable(b *strings.Builder, c Chart) {
	name := c.LabelName
	if name == "" {
		name = "When"
	}
	fmt.Fprintf(b, `<details><summary>%s: the values as a table</summary><div class="wrap"><table class="num"><thead><tr><th scope="col">%s</th>`,
		esc(c.Title), esc(name))
	for _, s := range c.Series {
		fmt.Fprintf(b, `<th scope="col">%s</th>`, esc(s.Name))
	}
	total := c.Kind == Stacked && len(c.Series) > 1
	if total {
		b.WriteString(`<th scope="col">Total</th>`)
	}
	b.WriteString("</tr></thead><tbody>\n")
	for i, l := range c.Labels {
		fmt.Fprintf(b, `<tr><th scope="row">%s</th>`, esc(l))
		var sum float64
		for _, s := range c.Series {
			cell := "–"
			if has(s, i) {
				cell = format(s.Values[i], c.Unit, false)
				sum += value(s, i)
			}
			fmt.Fprintf(b, "<td>%s</td>", esc(cell))
		}
		if total {
			fmt.Fprintf(b, "<td>%s</td>", esc(format(sum, c.Unit, false)))
		}
		b.WriteString("</tr>\n")
	}
	b.WriteString("</tbody></table></div></details>\n")
}

// Summary is the chart in one sentence: its span and its largest value.
func Summary(c Chart) string {
	n := len(c.Labels)
	if n == 0 || len(c.Series) == 0 {
		return "No data."
	}
	best, at, seen := 0.0, -1, false
	for i := range c.Labels {
		var v float64
		for _, s := range c.Series {
			if c.Kind == Stacked {
				v += value(s, i)
			} else if has(s, i) {
				seen = true
				v = math.Max(v, s.Values[i])
			}
		}
		if c.Kind == Stacked && v > 0 {
			seen = true
		}
		if at < 0 || v > best {
			best, at = v, i
		}
	}
	span := fmt.Sprintf("%s to %s", c.Labels[0], c.Labels[n-1])
	if !seen {
		return span + ": no data."
	}
	what := "highest"
	if c.Kind == Stacked {
		what = "highest total"
	}
	return fmt.Sprintf("%s, %d series; %s %s at %s.", span, len(c.Series), what, format(best, c.Unit, false), c.Labels[at])
}

// format writes v in the chart's unit; short is the axis' form.
func format(v float64, u Unit, short bool) string {
	switch u {
	case Percent:
		if short || v == math.Trunc(v) {
			return strconv.FormatFloat(v, 'f', 0, 64) + "%"
		}
		return strconv.FormatFloat(v, 'f', 1, 64) + "%"
	case Bytes:
		units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB"}
		i := 0
		for v >= 1024 && i < len(units)-1 {
			v /= 1024
			i++
		}
		return trim(v) + " " + units[i]
	}
	if !short || v < 1000 {
		if v == math.Trunc(v) {
			return strconv.FormatFloat(v, 'f', 0, 64)
		}
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	for _, s := range []struct {
		f float64
		n string
	}{{1e12, "T"}, {1e9, "G"}, {1e6, "M"}, {1e3, "k"}} {
		if v >= s.f {
			return trim(v/s.f) + s.n
		}
	}
	return trim(v)
}

// trim writes v with at most one decimal, none when it is whole.
func trim(v float64) string {
	if math.Abs(v-math.Round(v)) < 0.05 {
		return strconv.FormatFloat(math.Round(v), 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}

// num writes a coordinate with at most one decimal: enough at this size, and short.
func num(v float64) string { return strconv.FormatFloat(math.Round(v*10)/10, 'f', -1, 64) }
