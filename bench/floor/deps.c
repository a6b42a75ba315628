/*
 * RSS floor: the libraries every cmicro service loads (libuv, cJSON,
 * http_parser, zlib) and nothing of cmicro: a libuv loop listening on
 * 127.0.0.1:0, one JSON round trip, one parser initialised, one zlib call
 * and a second thread, as a service has a loop thread and a worker.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <http_parser.h>
#include <uv.h>
#include <zlib.h>

static void *
idle_thread(void *arg)
{
    (void) arg;
    pause();
    return NULL;
}

static void
on_connection(uv_stream_t *s, int status)
{
    (void) s;
    (void) status;
}

int
main(void)
{
    uv_loop_t *loop = uv_default_loop();
    uv_tcp_t tcp;
    struct sockaddr_in sa;
    struct sockaddr_storage bound;
    int len = sizeof(bound);
    uv_ip4_addr("127.0.0.1", 0, &sa);
    if (uv_tcp_init(loop, &tcp) != 0 ||
        uv_tcp_bind(&tcp, (const struct sockaddr *) &sa, 0) != 0 ||
        uv_listen((uv_stream_t *) &tcp, 128, on_connection) != 0 ||
        uv_tcp_getsockname(&tcp, (struct sockaddr *) &bound, &len) != 0) {
        return 1;
    }
    cJSON *j = cJSON_Parse("{\"name\":\"John\"}");
    char *out = cJSON_PrintUnformatted(j);
    free(out);
    cJSON_Delete(j);
    http_parser hp;
    http_parser_init(&hp, HTTP_REQUEST);
    uLong crc = crc32(0L, Z_NULL, 0);
    pthread_t th;
    if (pthread_create(&th, NULL, idle_thread, NULL) != 0) {
        return 1;
    }
    printf("listening on 127.0.0.1:%d (crc %lu)\n",
        ntohs(((struct sockaddr_in *) &bound)->sin_port), (unsigned long) crc);
    fflush(stdout);
    return uv_run(loop, UV_RUN_DEFAULT);
}
