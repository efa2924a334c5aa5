#!/usr/bin/env python3
"""Ground truth for tests/real_site.rs, computed from the files alone.

Usage: truth.py ROOT BASE_URL SPEC.json

Walks the static site under ROOT as a crawler starting at BASE_URL would
(breadth first, following every <a href> on the same host and port,
fragments removed), and prints one JSON object:
  pages:  every reachable HTML page, {url, title, h1, h2} as the spec's
          fields read it (text of the first <title>/<h1>, every <h2>;
          whitespace collapsed);
  failed: every reachable URL with no file behind it, {url, from: [pages
          linking to it]};
  other:  every reachable URL whose file is not HTML.
It shares no code with qpipe: html.parser, urllib.parse, os.path.
"""
import html.parser
import json
import os
import sys
import urllib.parse


def norm(s):
    return " ".join(s.split())


class Page(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.links = []
        self.title = None
        self.h1 = None
        self.h2 = []
        self.open = []  # [tag, [text]] of the elements being read

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            for k, v in attrs:
                if k == "href" and v is not None:
                    self.links.append(v)
        if tag in ("title", "h1", "h2"):
            self.open.append([tag, []])

    def handle_endtag(self, tag):
        for i in range(len(self.open) - 1, -1, -1):
            if self.open[i][0] == tag:
                _, parts = self.open.pop(i)
                text = norm("".join(parts))
                if tag == "title" and self.title is None:
                    self.title = text
                elif tag == "h1" and self.h1 is None:
                    self.h1 = text
                elif tag == "h2":
                    self.h2.append(text)
                break

    def handle_data(self, data):
        for el in self.open:
            el[1].append(data)


def main():
    root, base, _spec = sys.argv[1], sys.argv[2], sys.argv[3]
    origin = urllib.parse.urlsplit(base)
    queue, seen, head = [base], {base}, 0
    referrers = {}
    pages, failed, other = [], [], []
    while head < len(queue):
        url = queue[head]
        head += 1
        path = urllib.parse.unquote(urllib.parse.urlsplit(url).path)
        if path.endswith("/"):
            path += "index.html"
        file = os.path.join(root, path.lstrip("/"))
        if not os.path.isfile(file):
            failed.append({"url": url, "from": sorted(referrers.get(url, []))})
            continue
        if not file.endswith(".html"):
            other.append(url)
            continue
        p = Page()
        with open(file, encoding="utf-8", errors="replace") as f:
            p.feed(f.read())
        p.close()
        pages.append({"url": url, "title": p.title, "h1": p.h1, "h2": p.h2})
        for href in p.links:
            href = href.strip()
            if href.startswith(("mailto:", "javascript:", "tel:", "data:")):
                continue
            link = urllib.parse.urljoin(url, href)
            link = urllib.parse.urldefrag(link)[0]
            parts = urllib.parse.urlsplit(link)
            if parts.scheme != origin.scheme or parts.netloc != origin.netloc:
                continue
            if link == url:
                continue
            referrers.setdefault(link, set()).add(url)
            if link not in seen:
                seen.add(link)
                queue.append(link)
    json.dump({"pages": pages, "failed": failed, "other": other}, sys.stdout)


main()
