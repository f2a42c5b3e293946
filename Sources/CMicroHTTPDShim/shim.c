#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include "mp_mhd.h"

struct mp_mhd_server {
    struct MHD_Daemon *daemon;
    mp_mhd_log_fn log;
    void *context;
};

static void mp_mhd_format_log(void *cls, const char *format, va_list arguments) {
    const struct mp_mhd_server *server = cls;
    char message[512];
    vsnprintf(message, sizeof message, format, arguments);
    server->log(server->context, message);
}

struct mp_mhd_server *mp_mhd_start(unsigned int flags, const struct sockaddr *address,
                                   MHD_AccessHandlerCallback handler,
                                   MHD_RequestCompletedCallback completed,
                                   MHD_NotifyConnectionCallback connection_notify,
                                   mp_mhd_uri_fn uri, mp_mhd_log_fn log, void *context,
                                   unsigned int connection_timeout, unsigned int connection_limit) {
    struct mp_mhd_server *server = calloc(1, sizeof *server);
    if (server == NULL) return NULL;
    server->log = log;
    server->context = context;
    server->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, handler, context,
        MHD_OPTION_SOCK_ADDR, address,
        MHD_OPTION_URI_LOG_CALLBACK, uri, context,
        MHD_OPTION_NOTIFY_COMPLETED, completed, context,
        MHD_OPTION_NOTIFY_CONNECTION, connection_notify, context,
        MHD_OPTION_EXTERNAL_LOGGER, mp_mhd_format_log, server,
        MHD_OPTION_CONNECTION_TIMEOUT, connection_timeout,
        MHD_OPTION_CONNECTION_LIMIT, connection_limit,
        MHD_OPTION_END);
    if (server->daemon == NULL) {
        free(server);
        return NULL;
    }
    return server;
}

struct MHD_Daemon *mp_mhd_daemon(struct mp_mhd_server *server) {
    return server->daemon;
}

void mp_mhd_stop(struct mp_mhd_server *server) {
    MHD_stop_daemon(server->daemon);
    free(server);
}

int mp_mhd_connection_fd(struct MHD_Connection *connection) {
    const union MHD_ConnectionInfo *info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
    return info == NULL ? -1 : info->connect_fd;
}

const struct sockaddr *mp_mhd_connection_address(struct MHD_Connection *connection) {
    const union MHD_ConnectionInfo *info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    return info == NULL ? NULL : info->client_addr;
}

int mp_mhd_bound_port(struct MHD_Daemon *daemon) {
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(daemon, MHD_DAEMON_INFO_BIND_PORT);
    return info == NULL ? 0 : info->port;
}
