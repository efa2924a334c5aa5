"""Scrapy's side of scripts/bench-real.sh: crawl a static documentation
site with the same rules as qpipe's specs/docs.json, and print one line:
"pages items seconds".

    python3 scripts/bench_scrapy_docs.py START_URL OUT_JSONL

Follows every <a href> on the start URL's host and port (fragments
removed, as Scrapy does), reads title, h1 and every h2 (whitespace
collapsed) from each HTML page, and skips responses that are not text.
32 concurrent requests, no robots.txt, no delay, no cookies.
"""
import sys
import time
import urllib.parse

import scrapy
from scrapy.crawler import CrawlerProcess
from scrapy.http import TextResponse

START, OUT = sys.argv[1], sys.argv[2]
ORIGIN = urllib.parse.urlsplit(START).netloc


def norm(s):
    return " ".join((s or "").split())


class Docs(scrapy.Spider):
    name = "docs"
    start_urls = [START]

    def parse(self, response):
        if not isinstance(response, TextResponse):
            return
        title = response.css("title").xpath("string()").get()
        if title is not None:
            yield {
                "title": norm(title),
                "h1": norm(response.css("h1").xpath("string()").get()),
                "h2": [norm(h) for h in response.css("h2").xpath("string()").getall()],
                "url": response.url,
            }
        for href in response.css("a::attr(href)").getall():
            url = response.urljoin(href)
            if urllib.parse.urlsplit(url).netloc == ORIGIN:
                yield scrapy.Request(url, self.parse)


process = CrawlerProcess(
    settings={
        "LOG_LEVEL": "ERROR",
        "ROBOTSTXT_OBEY": False,
        "COOKIES_ENABLED": False,
        "TELNETCONSOLE_ENABLED": False,
        "CONCURRENT_REQUESTS": 32,
        "CONCURRENT_REQUESTS_PER_DOMAIN": 32,
        "DOWNLOAD_DELAY": 0,
        "DOWNLOAD_MAXSIZE": 8 << 20,
        "REQUEST_FINGERPRINTER_IMPLEMENTATION": "2.7",
        "FEEDS": {OUT: {"format": "jsonlines", "overwrite": True}},
    }
)
crawler = process.create_crawler(Docs)
started = time.monotonic()
process.crawl(crawler)
process.start()
seconds = time.monotonic() - started
stats = crawler.stats.get_stats()
print(stats.get("response_received_count", 0), stats.get("item_scraped_count", 0), f"{seconds:.3f}")
