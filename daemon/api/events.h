/* events.h — the Server-Sent Events broadcaster behind GET /api/v1/events.
 *
 * Any thread publishes an event; every connected client receives it as
 *
 *     id: 42
 *     event: job
 *     data: {"id":12,"status":"running","epoch":3}
 *
 * Each client has a bounded byte queue: a client that reads too slowly to keep up is
 * dropped (its stream ends; EventSource reconnects). A comment line is sent to idle clients
 * every heartbeat interval so proxies keep the connection and dead peers are noticed.
 *
 * Resumption. The hub keeps the last 1024 events (at most 1 MiB). A client that
 * reconnects with the id of the last event it saw (EventSource sends it as Last-Event-ID)
 * first receives every kept event after it; when some of them are no longer kept, or the
 * id is not one this hub gave (the daemon restarted: ids start from first_id, which the
 * daemon sets from the start time), it receives one "reset" event instead (data
 * {"last_event_id": N}), telling it to reload what it shows. */
#ifndef INITLAB_API_EVENTS_H
#define INITLAB_API_EVENTS_H

#include <stddef.h>

#include "api/router.h"

typedef struct {
    size_t queue_bytes;   /* per-client queue; a client that would exceed it is dropped */
    int heartbeat_ms;     /* comment to idle clients this often (default 15000) */
    int max_clients;      /* further subscribers get 503; keep it below the server's
                             per-address connection limit, which streams never leave */
    unsigned long long first_id; /* the first event's id is first_id + 1 */
} EventHubConfig;

/* Defaults: 256 KiB per client, 15 s heartbeat, 64 clients, ids from 1. Can't fail. */
void events_config_default(EventHubConfig *cfg);

/* Starts a hub and its heartbeat thread. Returns NULL on failure (allocation, thread). */
EventHub *events_create(const EventHubConfig *cfg);
/* Ends every stream and stops the heartbeat thread; later subscribers get 503 and later
 * publications are dropped. Returns once no client is paused any more, so the HTTP server
 * can stop afterwards. Idempotent; thread-safe. */
void events_close(EventHub *hub);
/* After events_close: waits up to timeout_ms until the server has finished every stream
 * (sent its end and freed the client), so stopping the server does not cut them off.
 * Returns the number of clients still connected. Thread-safe. */
int events_wait_drained(EventHub *hub, int timeout_ms);
/* Closes (if needed) and frees the hub. Call after the HTTP server stopped (no client may
 * be left). Accepts NULL. */
void events_free(EventHub *hub);

/* Sends event (a name: letters, digits, '_', '-', '.') with data json (one JSON text) to
 * every client. Returns the number of clients that queued it, or -1 for an invalid name
 * or allocation failure. Thread-safe, never blocks on a client. */
int events_publish(EventHub *hub, const char *event, const char *json);

/* Makes reply the event stream of a new client (200 text/event-stream), or a 503 problem
 * with Retry-After and "Connection: close" (the slot is freed at once) when the hub is
 * closed or full. last_event_id (may be NULL): the Last-Event-ID the client sent, to
 * resume from (see above). Returns 0, or -1 when the reply could not be set. */
int events_subscribe(EventHub *hub, ApiReply *reply, const char *last_event_id);

/* Clients connected now; clients dropped for being slow since the start. Thread-safe. */
int events_client_count(EventHub *hub);
long events_dropped_count(EventHub *hub);

#endif
