package accesslog

import (
	"log/slog"
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"
)

// The lines are the ones log/slog's TextHandler and JSONHandler write for a record of
// message "request" with these attributes, in this order (format_test.go holds each
// format to slog's own output, byte for byte): the request log reads like every other
// line of the process, and parsers written for slog keep working.
//
// They are formatted here rather than through a slog.Handler because the writer runs on
// the same cores as the requests: a handler costs a slog.Record, an attribute slice, a
// lock and a time.Format per line; this is a few appends into one buffer.

// timeCache keeps the formatted date and time of one second, and the zone, that every
// line of that second shares.
type timeCache struct {
	sec  int64
	loc  *time.Location
	date []byte // 2006-01-02T15:04:05
	zone []byte // Z or -07:00
}

func (c *timeCache) parts(t time.Time) (date, zone []byte) {
	if sec := t.Unix(); sec != c.sec || t.Location() != c.loc || c.date == nil {
		c.sec, c.loc = sec, t.Location()
		c.date = t.AppendFormat(c.date[:0], "2006-01-02T15:04:05")
		c.zone = t.AppendFormat(c.zone[:0], "Z07:00")
	}
	return c.date, c.zone
}

// appendText appends r as slog.TextHandler writes it.
func (c *timeCache) appendText(b []byte, r *Record) []byte {
	date, zone := c.parts(r.Time)
	b = append(b, "time="...)
	b = append(b, date...)
	// slog truncates to milliseconds and always writes three digits.
	ms := r.Time.Nanosecond() / 1e6
	b = append(b, '.', byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10))
	b = append(b, zone...)
	b = append(b, " level="...)
	b = append(b, levelName(r.Warn)...)
	b = append(b, " msg="...)
	b = append(b, Message...)
	b = appendTextString(append(b, " method="...), r.Method)
	b = appendTextString(append(b, " uri="...), r.URI)
	b = strconv.AppendInt(append(b, " status="...), int64(r.Status), 10)
	b = strconv.AppendInt(append(b, " bytes="...), r.Bytes, 10)
	b = appendTextString(append(b, " took="...), r.Took.String())
	b = append(b, " client="...)
	if r.Client.IsValid() && r.Client.Zone() == "" {
		b = r.Client.AppendTo(b) // digits, dots and colons: never quoted
	} else {
		b = appendTextString(b, clientText(r))
	}
	b = appendTextString(append(b, " peer="...), r.Peer)
	b = appendTextString(append(b, " endpoint="...), r.Endpoint)
	b = appendTextString(append(b, " region="...), orDash(r.Region))
	b = appendTextString(append(b, " tier="...), orDash(r.Tier))
	b = appendTextString(append(b, " agent="...), r.Agent)
	return append(b, '\n')
}

// appendJSON appends r as slog.JSONHandler writes it.
func (c *timeCache) appendJSON(b []byte, r *Record) []byte {
	date, zone := c.parts(r.Time)
	b = append(b, `{"time":"`...)
	b = append(b, date...)
	// RFC 3339 with nanoseconds, trailing zeros trimmed (time.RFC3339Nano).
	if ns := r.Time.Nanosecond(); ns != 0 {
		var frac [10]byte
		frac[0] = '.'
		for i := 9; i > 0; i-- {
			frac[i] = byte('0' + ns%10)
			ns /= 10
		}
		n := 10
		for frac[n-1] == '0' {
			n--
		}
		b = append(b, frac[:n]...)
	}
	b = append(b, zone...)
	b = append(b, `","level":"`...)
	b = append(b, levelName(r.Warn)...)
	b = append(b, `","msg":"`+Message+`"`...)
	b = appendJSONString(append(b, `,"method":`...), r.Method)
	b = appendJSONString(append(b, `,"uri":`...), r.URI)
	b = strconv.AppendInt(append(b, `,"status":`...), int64(r.Status), 10)
	b = strconv.AppendInt(append(b, `,"bytes":`...), r.Bytes, 10)
	b = strconv.AppendInt(append(b, `,"took":`...), int64(r.Took), 10)
	if r.Client.IsValid() && r.Client.Zone() == "" {
		b = append(r.Client.AppendTo(append(b, `,"client":"`...)), '"')
	} else {
		b = appendJSONString(append(b, `,"client":`...), clientText(r))
	}
	b = appendJSONString(append(b, `,"peer":`...), r.Peer)
	b = appendJSONString(append(b, `,"endpoint":`...), r.Endpoint)
	b = appendJSONString(append(b, `,"region":`...), orDash(r.Region))
	b = appendJSONString(append(b, `,"tier":`...), orDash(r.Tier))
	b = appendJSONString(append(b, `,"agent":`...), r.Agent)
	return append(b, "}\n"...)
}

// Attrs are r's attributes for a slog.Logger: the line a slog handler writes of them is
// the line the Logger writes of r.
func (r *Record) Attrs() []slog.Attr {
	return []slog.Attr{slog.String("method", r.Method), slog.String("uri", r.URI), slog.Int("status", r.Status),
		slog.Int64("bytes", r.Bytes), slog.Duration("took", r.Took), slog.String("client", clientText(r)),
		slog.String("peer", r.Peer), slog.String("endpoint", r.Endpoint), slog.String("region", orDash(r.Region)),
		slog.String("tier", orDash(r.Tier)), slog.String("agent", r.Agent)}
}

// Message is every request line's msg.
const Message = "request"

func levelName(warn bool) string {
	if warn {
		return "WARN"
	}
	return "INFO"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// clientText is the client's address, "-" when it is not known (a RemoteAddr that is
// not an address: tests, unix sockets).
func clientText(r *Record) string {
	if !r.Client.IsValid() {
		return "-"
	}
	return r.Client.String()
}

// appendTextString appends s as slog's text handler does: bare, or quoted with
// strconv.Quote when it is empty or holds a space, '=', '"', a control character or a
// rune that is not printable.
func appendTextString(b []byte, s string) []byte {
	// Printable ASCII (nearly every URI and agent) in one pass: strconv.Quote of such a
	// string escapes only '"' and '\\'.
	quote := s == ""
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f {
			return appendTextStringSlow(b, s)
		}
		quote = quote || c == ' ' || c == '=' || c == '"'
	}
	if !quote {
		return append(b, s...)
	}
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '"' || c == '\\' {
			b = append(append(b, s[start:i]...), '\\', c)
			start = i + 1
		}
	}
	return append(append(b, s[start:]...), '"')
}

func appendTextStringSlow(b []byte, s string) []byte {
	if needsQuoting(s) {
		return strconv.AppendQuote(b, s)
	}
	return append(b, s...)
}

func needsQuoting(s string) bool {
	if s == "" {
		return true
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c != '\\' && (c == ' ' || c == '=' || !safeASCII(c)) {
				return true
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError || unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return true
		}
		i += size
	}
	return false
}

// safeASCII is encoding/json's safeSet: printable ASCII but '"' and '\\'.
func safeASCII(c byte) bool { return c >= 0x20 && c != '"' && c != '\\' }

const hexDigits = "0123456789abcdef"

// appendJSONString appends s quoted as slog's JSON handler does: the escapes of
// encoding/json without its HTML ones, invalid UTF-8 as \ufffd, U+2028 and U+2029 escaped.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if safeASCII(c) {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(append(b, s[start:i]...), `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(append(b, s[start:i]...), '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
