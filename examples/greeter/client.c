/*
 * greeter-client: calls greeter Greeter.Hello and prints the reply's msg.
 *   greeter-client [--address host:port] [--name John] [Go Micro flags]
 * Without --address the service is found through the registry.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmicro/micro.h>

int
main(int argc, char **argv)
{
    micro_service *svc = NULL;
    int rc = micro_service_new(&svc, "greeter.client", &argc, argv);
    if (rc == MICRO_ECANCELED) {
        return 0;
    }
    if (rc != 0) {
        fprintf(stderr, "greeter-client: %s\n", micro_strerror(rc));
        return 2;
    }
    const char *address = NULL;
    const char *name = "John";
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "--address=", 10) == 0) {
            address = argv[i] + 10;
        } else if (strcmp(argv[i], "--address") == 0 && i + 1 < argc) {
            address = argv[++i];
        } else if (strncmp(argv[i], "--name=", 7) == 0) {
            name = argv[i] + 7;
        } else if (strcmp(argv[i], "--name") == 0 && i + 1 < argc) {
            name = argv[++i];
        }
    }
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "name", name);
    char *body = cJSON_PrintUnformatted(req);
    cJSON_Delete(req);
    micro_call_opts o = {.address = address};
    micro_call *call = NULL;
    rc = micro_client_call(micro_service_client(svc), "greeter",
        "Greeter.Hello", body, strlen(body), &o, &call);
    cJSON_free(body);
    int status = 0;
    if (rc == 0) {
        size_t len = 0;
        const char *p = micro_call_body(call, &len);
        cJSON *rsp = cJSON_ParseWithLength(p, len);
        const cJSON *msg = cJSON_GetObjectItemCaseSensitive(rsp, "msg");
        if (cJSON_IsString(msg)) {
            printf("%s\n", msg->valuestring);
        } else {
            printf("%.*s\n", (int) len, p);
        }
        cJSON_Delete(rsp);
    } else {
        const micro_error *e = micro_call_error(call);
        fprintf(stderr, "greeter-client: %s: %s\n", micro_strerror(rc),
            e && e->detail ? e->detail : "");
        status = 1;
    }
    micro_call_free(call);
    micro_service_free(svc);
    return status;
}
