/*
 * librdkafka mock cluster launcher for tests (see test/support/kafka-mock.ts).
 * usage: kafka-mock BROKERS [TOPIC:PARTITIONS ...]
 * Prints the bootstrap servers on one stdout line, then reads commands on stdin:
 *   down ID | up ID | rtt ID MS | error APIKEY ERRCODE COUNT | quit
 * Each command is answered with "ok" or "err <reason>". EOF on stdin also quits.
 */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
  char errstr[512];
  int brokers = argc > 1 ? atoi(argv[1]) : 1;
  if (brokers < 1) brokers = 1;
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof errstr); /* the handle never connects */
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
  if (!rk) { fprintf(stderr, "rd_kafka_new: %s\n", errstr); return 1; }
  rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, brokers);
  if (!mc) { fprintf(stderr, "mock cluster failed\n"); return 1; }
  for (int i = 2; i < argc; i++) {
    char *sep = strrchr(argv[i], ':');
    int parts = sep ? atoi(sep + 1) : 1;
    if (sep) *sep = '\0';
    rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(mc, argv[i], parts > 0 ? parts : 1, 1);
    if (err) { fprintf(stderr, "topic %s: %s\n", argv[i], rd_kafka_err2str(err)); return 1; }
  }
  printf("%s\n", rd_kafka_mock_cluster_bootstraps(mc));
  fflush(stdout);
  char line[256];
  while (fgets(line, sizeof line, stdin)) {
    char cmd[32] = "";
    int a = 0, b = 0, c = 0;
    int n = sscanf(line, "%31s %d %d %d", cmd, &a, &b, &c);
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
    if (n < 1) continue;
    if (!strcmp(cmd, "quit")) break;
    else if (!strcmp(cmd, "down") && n == 2) err = rd_kafka_mock_broker_set_down(mc, a);
    else if (!strcmp(cmd, "up") && n == 2) err = rd_kafka_mock_broker_set_up(mc, a);
    else if (!strcmp(cmd, "rtt") && n == 3) err = rd_kafka_mock_broker_set_rtt(mc, a, b);
    else if (!strcmp(cmd, "error") && n == 4) {
      for (int i = 0; i < c; i++) rd_kafka_mock_push_request_errors(mc, (int16_t)a, 1, (rd_kafka_resp_err_t)b);
    } else { printf("err unknown command\n"); fflush(stdout); continue; }
    if (err) printf("err %s\n", rd_kafka_err2str(err)); else printf("ok\n");
    fflush(stdout);
  }
  rd_kafka_mock_cluster_destroy(mc);
  rd_kafka_destroy(rk);
  return 0;
}
