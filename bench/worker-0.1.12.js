"use strict";
// open-channel 0.1.12 picks its host among the processes running the same entry script (it lists
// them with `ps`): its workers get an entry of their own, so the other systems' workers never count.
require("./worker");
