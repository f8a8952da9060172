/* Simulated sensor hardware for the host: I2C bus and parts, analog input, physical environment. */
export { SimI2CBus, createSimI2C, noFaults, type SimFaults, type SimI2CDevice } from './bus';
export { Environment, type EnvironmentOptions, type Wave, type Quantity } from './environment';
export { SimSht3x, type SimSht3xOptions } from './sht3x';
export { SimBme280, DEFAULT_CALIBRATION, packBme280Calibration, type SimBme280Options } from './bme280';
export { SimAnalog, createSimAnalog, type SimAnalogOptions } from './analog';
