"""Scrapy's side of scripts/bench.sh: crawl a demo-site export with the same
rules as qpipe's built-in spec, and print one line: "pages items seconds".

    python3 scripts/bench_scrapy.py START_URL OUT_JSONL

Same item (div.quote: span.text, small.author, a.tag) and the same follow
selectors ("li.next a", "a.tag", "ul.sitemap a"); items go to a JSON-lines
feed. 32 concurrent requests, no robots.txt, no delay, no cookies.
"""
import sys
import time

import scrapy
from scrapy.crawler import CrawlerProcess

START, OUT = sys.argv[1], sys.argv[2]


class Quotes(scrapy.Spider):
    name = "quotes"
    start_urls = [START]

    def parse(self, response):
        for q in response.css("div.quote"):
            yield {
                "quote": (q.css("span.text::text").get() or "").strip(),
                "author": (q.css("small.author::text").get() or "").strip(),
                "tags": [t.strip() for t in q.css("a.tag::text").getall()],
                "url": response.url,
            }
        for href in response.css("li.next a, a.tag, ul.sitemap a").xpath("@href").getall():
            yield response.follow(href, self.parse)


process = CrawlerProcess(
    settings={
        "LOG_LEVEL": "ERROR",
        "ROBOTSTXT_OBEY": False,
        "COOKIES_ENABLED": False,
        "TELNETCONSOLE_ENABLED": False,
        "CONCURRENT_REQUESTS": 32,
        "CONCURRENT_REQUESTS_PER_DOMAIN": 32,
        "DOWNLOAD_DELAY": 0,
        "REQUEST_FINGERPRINTER_IMPLEMENTATION": "2.7",
        "FEEDS": {OUT: {"format": "jsonlines", "overwrite": True}},
    }
)
crawler = process.create_crawler(Quotes)
started = time.monotonic()
process.crawl(crawler)
process.start()
seconds = time.monotonic() - started
stats = crawler.stats.get_stats()
print(stats.get("response_received_count", 0), stats.get("item_scraped_count", 0), f"{seconds:.3f}")
