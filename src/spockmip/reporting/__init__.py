"""What the tables and figures show: seeds averaged, paired statistics, the summary tables, the figures."""
