"""Hardware-free stand-ins that the real drivers run against: chips, buses, sysfs trees."""
