"""Django's Redis cache, keeping one client per connection pool.

Django builds a fresh `redis.Redis` for every cache call, and building one costs more than the
call (~0.1 ms of CPU: it fills a table of some 170 response callbacks). Sessions live in this cache,
so that was paid on every signed-in request. A client is safe to share between threads: each
command takes a connection from the pool."""

from django.core.cache.backends import redis


class SharedClientRedisCacheClient(redis.RedisCacheClient):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._clients: dict[int, object] = {}

    def get_client(self, key=None, *, write=False):
        pool = self._get_connection_pool(write)
        client = self._clients.get(id(pool))
        if client is None:
            client = self._clients[id(pool)] = self._client(connection_pool=pool)
        return client


class RedisCache(redis.RedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = SharedClientRedisCacheClient
