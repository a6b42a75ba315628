/* A translation unit for the generated sources to join. */
typedef int micro_test_proto_unit;
