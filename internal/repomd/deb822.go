package repomd

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Paragraph is one deb822 paragraph: field names as written (matched without regard to
// case, as apt does) and their values, continuation lines joined with "\n" and the one
// leading space of each continuation line removed.
type Paragraph struct {
	names  []string
	values []string
}

// Get returns a field's value ("" when absent).
func (p *Paragraph) Get(name string) string {
	v, _ := p.Lookup(name)
	return v
}

// Lookup returns a field's value and whether the paragraph has it.
func (p *Paragraph) Lookup(name string) (string, bool) {
	for i, n := range p.names {
		if strings.EqualFold(n, name) {
			return p.values[i], true
		}
	}
	return "", false
}

// Len is the number of fields.
func (p *Paragraph) Len() int { return len(p.names) }

// maxLine bounds one line of a deb822 file: Packages files have long Description fields,
// but no real line comes near this.
const maxLine = 1 << 20

// ReadParagraphs calls fn for each paragraph of r, in order. Blank lines separate
// paragraphs; lines starting with "#" are comments (deb822 allows them in sources files,
// and apt skips them in Release too). A line that is neither a field, a continuation nor
// blank is an error, as is a continuation before any field or a field given twice.
func ReadParagraphs(r io.Reader, fn func(*Paragraph) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	var cur Paragraph
	line := 0
	flush := func() error {
		if cur.Len() == 0 {
			return nil
		}
		err := fn(&cur)
		cur = Paragraph{}
		return err
	}
	for sc.Scan() {
		line++
		b := bytes.TrimRight(sc.Bytes(), "\r")
		switch {
		case len(bytes.TrimSpace(b)) == 0:
			if err := flush(); err != nil {
				return err
			}
		case b[0] == '#':
		case b[0] == ' ' || b[0] == '\t':
			if cur.Len() == 0 {
				return fmt.Errorf("line %d: a continuation line before any field", line)
			}
			last := len(cur.values) - 1
			cont := string(b[1:])
			if cont == "." { // deb822's empty line inside a value
				cont = ""
			}
			if cur.values[last] == "" {
				cur.values[last] = cont
			} else {
				cur.values[last] += "\n" + cont
			}
		default:
			name, value, ok := bytes.Cut(b, []byte{':'})
			if !ok || len(name) == 0 || bytes.ContainsAny(name, " \t") {
				return fmt.Errorf("line %d: not a field (want \"Name: value\")", line)
			}
			n := string(name)
			if _, dup := cur.Lookup(n); dup {
				return fmt.Errorf("line %d: field %s given twice", line, n)
			}
			cur.names = append(cur.names, n)
			cur.values = append(cur.values, strings.TrimSpace(string(value)))
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return fmt.Errorf("line %d: longer than %d bytes", line+1, maxLine)
		}
		return err
	}
	return flush()
}
