// href-counter counts the anchor links of an HTML page that stay on the
// page's own site (internal) and those that leave it (external), and prints
// {"internal":N,"external":M}. The page comes from a URL or a file.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"golang.org/x/net/html"
)

type counts struct {
	Internal int `json:"internal"`
	External int `json:"external"`
}

func open(source string) (io.ReadCloser, *url.URL, error) {
	if strings.HasPrefix(source, "http://") || strings.HasPrefix(source, "https://") {
		base, err := url.Parse(source)
		if err != nil {
			return nil, nil, err
		}
		resp, err := http.Get(source)
		if err != nil {
			return nil, nil, err
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return nil, nil, fmt.Errorf("%s: HTTP %d", source, resp.StatusCode)
		}
		return resp.Body, base, nil
	}
	f, err := os.Open(source)
	if err != nil {
		return nil, nil, err
	}
	return f, &url.URL{}, nil
}

// external reports whether href leads off the page's site.
func external(base *url.URL, href string) bool {
	u, err := url.Parse(strings.TrimSpace(href))
	if err != nil {
		return false
	}
	if u.Scheme == "mailto" || u.Scheme == "javascript" {
		return false
	}
	if u.Host == "" {
		return false
	}
	return base.Host == "" || !strings.EqualFold(u.Host, base.Host)
}

func count(r io.Reader, base *url.URL) (counts, error) {
	var c counts
	z := html.NewTokenizer(r)
	for {
		switch z.Next() {
		case html.ErrorToken:
			if z.Err() == io.EOF {
				return c, nil
			}
			return c, z.Err()
		case html.StartTagToken, html.SelfClosingTagToken:
			t := z.Token()
			if t.Data != "a" {
				continue
			}
			for _, a := range t.Attr {
				if a.Key != "href" {
					continue
				}
				if external(base, a.Val) {
					c.External++
				} else {
					c.Internal++
				}
			}
		}
	}
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: href-counter URL-OR-FILE")
		os.Exit(2)
	}
	body, base, err := open(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer body.Close()
	c, err := count(body, base)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	out, _ := json.Marshal(c)
	fmt.Println(string(out))
}
