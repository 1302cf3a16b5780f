// Package human renders sizes and ages for people, the same way on the CLI and the pages.
package human
